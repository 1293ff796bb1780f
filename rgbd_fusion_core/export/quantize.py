"""Static int8 quantization (QDQ) of the stage convolutions for ONNX Runtime on CPU, chosen per stage by quality.

    rgbd-fusion quantize --calib CALIB_DATA --heldout HELDOUT_DATA --out DIR [--model M]

1. Both stages are exported in fp32 (``export_stages``) into ``DIR``.
2. Calibration: the denoiser inputs (x_t, t, cond) met while sampling the end-to-end path (the Pipeline's own
   network-space ``stage1_depth`` / ``stage2_depth``, node defaults: 3 + 2 steps) on the calibration renders.
   ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights, uint8 activations, MinMax)
   quantizes the ``Conv`` nodes only.
3. Choice: the end-to-end network-space depth on the held-out renders (never the calibration ones) is scored
   (MAE, IoU at -0.9 against the truth) for fp32 and for each stage int8; a stage is kept int8 when, with the
   chosen set, IoU drops by at most ``max_iou_drop`` and MAE grows by at most ``max_mae_rise`` (relative).
4. ``DIR`` becomes an export folder (``runtime/graph_contract.py``) whose chosen stages are int8 graphs;
   ``export.json`` gains ``"int8"``: the choice, the scores and the thresholds. Any ONNX-based backend can run it
   (``--onnx DIR`` of predict / demo / bag, the node's ``onnx`` parameter; ``rgbd-fusion benchmark --backends
   onnxruntime-int8 --int8-folder DIR``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from rgbd_fusion_core.io.atomic import write_text_atomic
from rgbd_fusion_core.io.hashing import sha256_file
from rgbd_fusion_core.runtime.graph_contract import METADATA, load_exported_stage, read_export_metadata


class Recorder:
    """A denoiser wrapper that keeps every (x_t, t, cond) it is called with, split to batch 1."""

    def __init__(self, denoiser):
        self.denoiser, self.device, self.feeds = denoiser, denoiser.device, []

    def __call__(self, x_t, t, cond):
        for i in range(x_t.shape[0]):
            self.feeds.append(
                {
                    "x_t": x_t[i : i + 1].numpy().copy(),
                    "t": t[i : i + 1].numpy().copy(),
                    "cond": cond[i : i + 1].numpy(),
                }
            )
        return self.denoiser(x_t, t, cond)


def end_to_end_depth(pipeline, dataset, batch_size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, true) (N, 1, 256, 256) network-space depth of every sample, stage 2 fed by stage 1; the noise
    is drawn from ``seed`` so two pipelines see the same noise."""
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed)
    preds, truths = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        b = batch["rgb64"].shape[0]
        noise64 = torch.randn((b, 1, 64, 64), generator=generator)
        low = pipeline.stage1_depth(batch["rgb64"], batch.get("pose64"), noise64)
        res = pipeline.stage2.resolution
        noise = torch.randn((b, 1, res, res), generator=generator)
        preds.append(pipeline.stage2_depth(batch[f"rgb{res}"], low, noise).float().cpu())
        truths.append(batch[f"depth{res}"])
    return torch.cat(preds), torch.cat(truths)


def scores(pred: torch.Tensor, truth: torch.Tensor, space) -> dict:
    from rgbd_fusion_core.evaluation.metrics import paper_metrics

    metrics = paper_metrics(pred, truth, space)
    return {"mae": float(metrics["mae"].mean()), "iou": float(metrics["iou@-0.9"].mean())}


def quantize_stage(fp32_path: Path, out_path: Path, feeds: list[dict]) -> Path:
    """Conv-only static int8 QDQ of one stage's ONNX, calibrated on ``feeds`` (dicts of batch-1 inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(fp32_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out_path


def build_int8_folder(
    model,
    calib_data,
    heldout_data,
    out_dir,
    max_iou_drop: float = 0.01,
    max_mae_rise: float = 0.05,
    threads: int | None = None,
) -> dict:
    """Export, calibrate, quantize and choose per stage (see the module docstring); returns the ``int8`` entry."""
    from rgbd_fusion_core.data.dataset import RGBDDataset
    from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
    from rgbd_fusion_core.export.onnx_export import export_stages
    from rgbd_fusion_core.inference.backends import make_backend
    from rgbd_fusion_core.inference.pipeline import Pipeline, Stage
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig
    from rgbd_fusion_core.models.checkpoint import load_stage_model
    from rgbd_fusion_core.models.model_files import resolve_model_dir

    out_dir = Path(out_dir)
    paths = resolve_model_dir(model)
    loaded = {stage: load_stage_model(path, expected_stage=stage) for stage, path in zip((1, 2), paths)}
    export_stages({s: (c, m, str(paths[s - 1])) for s, (c, m) in loaded.items()}, out_dir)
    fp32 = {s: load_exported_stage(out_dir, s).onnx_path for s in loaded}
    space = loaded[1][0].depth_space
    settings = PipelineConfig()
    options = {"threads": threads} if threads else {}

    def pipeline(denoisers):
        stages = [Stage(loaded[s][0], denoisers[s], GaussianDiffusion(loaded[s][0].diffusion)) for s in (1, 2)]
        return Pipeline(stages[0], stages[1], settings)

    recorders = {s: Recorder(make_backend("torch", c, m, "cpu", channels_last=False)) for s, (c, m) in loaded.items()}
    with torch.no_grad():
        end_to_end_depth(pipeline(recorders), RGBDDataset(calib_data, "all", space))
    int8 = {s: quantize_stage(fp32[s], out_dir / f"stage{s}.int8.onnx", recorders[s].feeds) for s in loaded}

    heldout = RGBDDataset(heldout_data, "all", space)
    results = {}
    for name, chosen in (("fp32", ()), ("stage1_int8", (1,)), ("stage2_int8", (2,)), ("both_int8", (1, 2))):
        denoisers = {
            s: make_backend(
                "onnxruntime", loaded[s][0], None, "cpu", source=int8[s] if s in chosen else fp32[s], **options
            )
            for s in (1, 2)
        }
        with torch.no_grad():
            pred, truth = end_to_end_depth(pipeline(denoisers), heldout)
        results[name] = {**scores(pred, truth, space), "stages_int8": list(chosen)}
        if name == "fp32":
            reference = pred
        else:
            results[name]["max_abs_diff_vs_fp32"] = float((pred - reference).abs().max())
    base = results["fp32"]

    def acceptable(entry):
        return base["iou"] - entry["iou"] <= max_iou_drop and entry["mae"] <= base["mae"] * (1 + max_mae_rise)

    chosen_name = next(n for n in ("both_int8", "stage2_int8", "stage1_int8", "fp32") if acceptable(results[n]))
    chosen = results[chosen_name]["stages_int8"]
    metadata = read_export_metadata(out_dir)
    for s in chosen:
        target = out_dir / f"stage{s}.onnx"
        target.write_bytes(int8[s].read_bytes())
        metadata["stages"][f"stage{s}"].update(sha256=sha256_file(target), precision="int8 (Conv, static QDQ)")
    entry = {
        "stages": chosen,
        "choice": chosen_name,
        "scores_heldout": results,
        "heldout": str(heldout_data),
        "heldout_samples": len(heldout),
        "calibration": str(calib_data),
        "calibration_feeds": {f"stage{s}": len(r.feeds) for s, r in recorders.items()},
        "rule": {"max_iou_drop": max_iou_drop, "max_mae_rise": max_mae_rise},
        "sampling": dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else str(settings),
    }
    metadata["int8"] = entry
    write_text_atomic(out_dir / METADATA, json.dumps(metadata, indent=2) + "\n")
    return entry


def int8_stage_onnx(config, module, folder) -> Path:
    """The ONNX of this stage in an int8 folder written by ``build_int8_folder`` (checked against ``config``)."""
    if folder is None:
        raise ValueError("onnxruntime-int8 needs an int8 folder: rgbd-fusion quantize ... --out DIR")
    exported = load_exported_stage(folder, config.stage)
    if exported.config != config:
        raise ValueError(f"{folder}: its stage-{config.stage} config differs from the model being run")
    return exported.onnx_path
