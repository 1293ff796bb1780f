"""Evaluation of stage 1, stage 2 alone (fed the true 64x64 depth, optionally noisy) and end to end (stage 2
fed by stage 1), with every metric of DESIGN.md section 4, on a dataset split.

Metric depth uses the ground-truth reference depth z_ref of each sample (the networks predict shape relative to
z_ref; how z_ref is found at inference is the Pipeline's job and tested there).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from rgbd_fusion_core.camera import backproject
from rgbd_fusion_core.checkpoint import load_stage_model
from rgbd_fusion_core.conditioning import stage2_condition
from rgbd_fusion_core.config import AugmentConfig, SamplerConfig
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.diffusion.samplers import make_sampler, sample
from rgbd_fusion_core.evaluation.flops import denoiser_gflop
from rgbd_fusion_core.evaluation.metrics import chamfer_distance_mm, metric_depth_metrics, paper_metrics


class Accumulator:
    """Collects per-sample metric tensors and reports their means (NaN-aware)."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}

    def add(self, metrics: dict) -> None:
        for key, value in metrics.items():
            self.values.setdefault(key, []).extend(torch.as_tensor(value).flatten().tolist())

    def means(self) -> dict:
        out = {}
        for key, values in self.values.items():
            finite = [v for v in values if np.isfinite(v)]
            out[key] = float(np.mean(finite)) if finite else float("nan")
        return out


def score(pred: torch.Tensor, truth: torch.Tensor, z_ref: torch.Tensor, K: torch.Tensor, space) -> dict:
    """All per-sample metrics for (B, 1, H, W) network-space predictions against the truth."""
    metrics = paper_metrics(pred, truth, space)
    metrics["iou"] = metrics["iou@-0.95"]
    zr = z_ref.view(-1, 1, 1, 1)
    pred_m, truth_m = space.to_metres(space.clean(pred), zr), space.to_metres(truth, zr)
    metrics.update(metric_depth_metrics(pred_m, truth_m))
    chamfer = []
    for p, t, k in zip(pred_m[:, 0].numpy(), truth_m[:, 0].numpy(), K.numpy()):
        chamfer.append(
            chamfer_distance_mm(torch.from_numpy(backproject(p, k)[0]), torch.from_numpy(backproject(t, k)[0]))
        )
    metrics["chamfer_mm"] = torch.tensor(chamfer)
    return metrics


def evaluate(
    stage1_path: str | Path,
    stage2_path: str | Path | None,
    data_dir: str | Path,
    split: str = "test",
    sampler: str = "dpmpp2m",
    steps1: int | None = None,
    steps2: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    vlb_samples: int = 0,
    cond_noise: float = 0.0,
    figure: str | Path | None = None,
) -> dict:
    from rgbd_fusion_core.data.dataset import RGBDDataset

    config1, model1 = load_stage_model(stage1_path, expected_stage=1)
    stages = {1: (config1, model1)}
    if stage2_path is not None:
        stages[2] = load_stage_model(stage2_path, expected_stage=2)
    space = config1.depth_space
    dataset = RGBDDataset(data_dir, split=split, depth_space=space)
    if limit:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    steps = {1: steps1 or config1.sampler.steps, 2: steps2 or (stages[2][0].sampler.steps if 2 in stages else 0)}
    diffusions = {s: GaussianDiffusion(c.diffusion) for s, (c, _) in stages.items()}
    samplers = {s: make_sampler(SamplerConfig(name=sampler, steps=steps[s]), diffusions[s]) for s in stages}
    sections = {"stage1": Accumulator()}
    if 2 in stages:
        sections.update(stage2_gt_low=Accumulator(), end_to_end=Accumulator())
    seconds = {name: 0.0 for name in sections}
    generator = torch.Generator().manual_seed(seed)
    figure_rows = []

    for batch in DataLoader(dataset, batch_size=batch_size):
        b = batch["rgb64"].shape[0]
        started = time.perf_counter()
        pred64 = sample(model1, samplers[1], batch["rgb64"], (b, 1, 64, 64), generator=generator)
        seconds["stage1"] += time.perf_counter() - started
        sections["stage1"].add(score(pred64, batch["depth64"], batch["z_ref"], batch["K64"], space))
        if 2 not in stages:
            continue
        res = stages[2][0].resolution
        low = batch["depth64"]
        if cond_noise > 0:
            from rgbd_fusion_core.augment import augment_depth

            fixed = AugmentConfig(enabled=True, sigma_min=cond_noise, sigma_max=cond_noise, probability=1.0)
            low = augment_depth(low, fixed, space.threshold, generator)
        for name, depth_low in (("stage2_gt_low", low), ("end_to_end", space.clean(pred64))):
            started = time.perf_counter()
            cond = stage2_condition(batch[f"rgb{res}"], depth_low)
            pred = sample(stages[2][1], samplers[2], cond, (b, 1, res, res), generator=generator)
            seconds[name] += time.perf_counter() - started
            sections[name].add(score(pred, batch[f"depth{res}"], batch["z_ref"], batch[f"K{res}"], space))
            if name == "end_to_end" and figure is not None and len(figure_rows) < 8:
                figure_rows += list(zip(batch[f"rgb{res}"], batch[f"depth{res}"], pred, batch["z_ref"]))

    n = len(dataset)
    report = {
        "data": str(data_dir),
        "split": split,
        "samples": n,
        "sampler": sampler,
        "steps": {f"stage{s}": steps[s] for s in stages},
    }
    gflop = {s: denoiser_gflop(m, c) for s, (c, m) in stages.items()}
    for name, acc in sections.items():
        result = acc.means()
        stage_set = (1,) if name == "stage1" else ((2,) if name == "stage2_gt_low" else (1, 2))
        result["nfe"] = sum(steps[s] for s in stage_set)
        result["gflop_per_frame"] = sum(steps[s] * gflop[s] for s in stage_set)
        result["ms_per_frame"] = 1000 * (seconds[name] + (seconds["stage1"] if name == "end_to_end" else 0)) / max(n, 1)
        report[name] = result
    if cond_noise > 0 and "stage2_gt_low" in report:
        report["stage2_gt_low"]["cond_noise_sigma"] = cond_noise
    if vlb_samples > 0:
        for stage, bpd in variational_bounds(stages, dataset, vlb_samples, seed).items():
            report["stage1" if stage == 1 else "stage2_gt_low"]["vlb_bits_per_dim"] = bpd
        report["vlb_samples"] = min(vlb_samples, n)
    if figure is not None and figure_rows:
        from rgbd_fusion_core.evaluation.figure import save_comparison_figure

        save_comparison_figure(figure, figure_rows, space)
    return report


def variational_bounds(stages: dict, dataset, count: int, seed: int) -> dict[int, float]:
    """stage -> full VLB in bits/dim (all T terms plus the prior), mean over the first ``count`` samples. On
    float depth the discretised decoder makes this a pseudo-likelihood."""
    batch = next(iter(DataLoader(Subset(dataset, range(min(count, len(dataset)))), batch_size=count)))
    out = {}
    for stage, (config, model) in stages.items():
        diffusion = GaussianDiffusion(config.diffusion)
        if stage == 1:
            x0, cond = batch["depth64"], batch["rgb64"]
        else:
            res = config.resolution
            x0, cond = batch[f"depth{res}"], stage2_condition(batch[f"rgb{res}"], batch["depth64"])
        bpd = diffusion.bits_per_dim(model, x0, cond, generator=torch.Generator().manual_seed(seed))
        out[stage] = float(bpd.mean())
    return out
