"""Evaluation of stage 1, stage 2 alone (fed the true 64x64 depth, optionally noisy) and end to end (stage 2
fed by stage 1), with every metric of DESIGN.md section 4, on a dataset split.

Metric depth uses the ground-truth reference depth z_ref of each sample (the networks predict shape relative to
z_ref; how z_ref is found at inference is the Pipeline's job and tested there). The stages run through the
Pipeline's own network-space path (``Pipeline.stage1_depth`` / ``stage2_depth``), so what is scored is what
inference does.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from rgbd_fusion_core.config import AugmentConfig
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.evaluation.flops import denoiser_gflop
from rgbd_fusion_core.evaluation.scores import Accumulator, score
from rgbd_fusion_core.geometry.conditioning import stage1_condition, stage2_condition
from rgbd_fusion_core.inference.backends import make_backend
from rgbd_fusion_core.inference.pipeline import Pipeline, Stage
from rgbd_fusion_core.inference.pipeline_io import PipelineConfig
from rgbd_fusion_core.models.checkpoint import load_stage_model


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
    ready = {
        s: Stage(c, make_backend("torch", c, m, "cpu", channels_last=False), GaussianDiffusion(c.diffusion))
        for s, (c, m) in stages.items()
    }
    settings = PipelineConfig(sampler1=sampler, steps1=steps[1], sampler2=sampler, steps2=steps[2] or 1)
    pipeline = Pipeline(ready[1], ready[2], settings) if 2 in stages else None
    sections = {"stage1": Accumulator()}
    if 2 in stages:
        sections.update(stage2_gt_low=Accumulator(), end_to_end=Accumulator())
    seconds = {name: 0.0 for name in sections}
    generator = torch.Generator().manual_seed(seed)
    figure_rows = []

    for batch in DataLoader(dataset, batch_size=batch_size):
        b = batch["rgb64"].shape[0]
        started = time.perf_counter()
        noise64 = torch.randn((b, 1, 64, 64), generator=generator)
        if pipeline is not None:
            pred64 = pipeline.stage1_depth(batch["rgb64"], batch.get("pose64"), noise64)
        else:
            cond64 = stage1_condition(batch["rgb64"], batch.get("pose64"), config1.conditioning)
            pred64 = ready[1].sample(cond64, sampler, steps[1], noise64)
        seconds["stage1"] += time.perf_counter() - started
        sections["stage1"].add(score(pred64, batch["depth64"], batch["z_ref"], batch["K64"], space))
        if 2 not in stages:
            continue
        res = stages[2][0].resolution
        low = batch["depth64"]
        if cond_noise > 0:
            from rgbd_fusion_core.training.augment import augment_depth

            fixed = AugmentConfig(enabled=True, sigma_min=cond_noise, sigma_max=cond_noise, probability=1.0)
            low = augment_depth(low, fixed, space.threshold, generator)
        for name, depth_low in (("stage2_gt_low", low), ("end_to_end", pred64)):
            started = time.perf_counter()
            noise = torch.randn((b, 1, res, res), generator=generator)
            pred = pipeline.stage2_depth(batch[f"rgb{res}"], depth_low, noise)
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
            x0, cond = batch["depth64"], stage1_condition(batch["rgb64"], batch.get("pose64"), config.conditioning)
        else:
            res = config.resolution
            x0, cond = batch[f"depth{res}"], stage2_condition(batch[f"rgb{res}"], batch["depth64"])
        bpd = diffusion.bits_per_dim(model, x0, cond, generator=torch.Generator().manual_seed(seed))
        out[stage] = float(bpd.mean())
    return out
