"""``rgbd-fusion benchmark``: what a frame costs with the default model, measured in one run as ratios.

- matmul peak: best fp32 GFLOP/s of a 2048x2048 matrix multiply on this machine, now;
- per stage: ms per denoiser evaluation (batch 1), GFLOP per evaluation (FLOP counter), achieved GFLOP/s and
  its share of the matmul peak; NFE per frame;
- end to end: frames/s of the whole Pipeline on the bundled frames, per backend (torch eager and ONNX Runtime),
  and the ONNX Runtime / torch speed ratio.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from rgbd_fusion_core.evaluation.flops import denoiser_gflop
from rgbd_fusion_core.inference.pipeline import Pipeline
from rgbd_fusion_core.inference.pipeline_io import Frame


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def time_calls(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def stage_costs(pipeline: Pipeline, repeats: int) -> dict:
    out = {}
    for name, stage in (("stage1", pipeline.stage1), ("stage2", pipeline.stage2)):
        config, r = stage.config, stage.config.resolution
        x = torch.randn(1, config.model.in_channels, r, r)
        cond = torch.randn(1, config.model.cond_channels, r, r)
        t = torch.tensor([float(config.diffusion.timesteps // 2)])
        seconds = time_calls(lambda stage=stage, x=x, t=t, cond=cond: stage.denoiser(x, t, cond), repeats)
        module = getattr(stage.denoiser, "module", None)
        out[name] = {
            "ms_per_eval": 1000 * seconds,
            "gflop_per_eval": denoiser_gflop(module, config) if module else None,
        }
    return out


def benchmark(
    model=None, frames: list[Frame] | None = None, backends=("torch", "onnxruntime"), repeats: int = 10, config=None
) -> dict:
    report = {"threads": torch.get_num_threads(), "matmul_peak_gflops": matmul_peak_gflops()}
    torch_pipeline = Pipeline.from_pretrained(model, backend="torch", device="cpu", config=config)
    costs = stage_costs(torch_pipeline, repeats)
    cfg = torch_pipeline.config
    nfe = {"stage1": cfg.steps1, "stage2": cfg.steps2}
    gflop_frame = 0.0
    for name, cost in costs.items():
        cost["nfe_per_frame"] = nfe[name]
        cost["achieved_gflops"] = cost["gflop_per_eval"] / (cost["ms_per_eval"] / 1000)
        cost["share_of_matmul_peak"] = cost["achieved_gflops"] / report["matmul_peak_gflops"]
        gflop_frame += nfe[name] * cost["gflop_per_eval"]
    report["stages"] = costs
    report["gflop_per_frame"] = gflop_frame
    report["nfe_per_frame"] = sum(nfe.values())
    end_to_end = {}
    for backend in backends:
        pipeline = (
            torch_pipeline
            if backend == "torch"
            else Pipeline.from_pretrained(model, backend=backend, device="cpu", config=config)
        )
        seconds = time_calls(lambda pipeline=pipeline: [pipeline(f) for f in frames], max(1, repeats // 3))
        per_frame = seconds / len(frames)
        result = pipeline(frames[0])
        end_to_end[backend] = {
            "ms_per_frame": 1000 * per_frame,
            "frames_per_s": 1 / per_frame,
            "ms_per_step": {k: round(v, 2) for k, v in result.timings_ms.items()},
            "achieved_gflops": gflop_frame / per_frame,
        }
    report["end_to_end"] = end_to_end
    if "torch" in end_to_end and "onnxruntime" in end_to_end:
        report["onnxruntime_speedup_vs_torch"] = (
            end_to_end["torch"]["ms_per_frame"] / end_to_end["onnxruntime"]["ms_per_frame"]
        )
    report["targets"] = {
        "frames_per_s >= 5": max(v["frames_per_s"] for v in end_to_end.values()) >= 5,
        "onnxruntime_speedup >= 1.3": report.get("onnxruntime_speedup_vs_torch", 0) >= 1.3,
        "denoiser share of peak >= 0.4": min(c["share_of_matmul_peak"] for c in costs.values()) >= 0.4,
    }
    return report


def bundled_frames(limit: int = 4) -> list[Frame]:
    from rgbd_fusion_core.apps.demo_run import BUNDLED_FRAMES
    from rgbd_fusion_core.data.format import read_index
    from rgbd_fusion_core.io.imageio import read_rgb

    index = read_index(BUNDLED_FRAMES)
    return [
        Frame(read_rgb(BUNDLED_FRAMES / s.files[256]["rgb"]), np.asarray(s.K[256], dtype=np.float64))
        for s in index.samples[:limit]
    ]
