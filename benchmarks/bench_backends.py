"""Denoiser evaluation time per backend and stage (batch 1): torch eager vs ONNX Runtime; prints JSON.

    python benchmarks/bench_backends.py [--model MODEL_DIR | --preset small] [--threads 2 --rounds 7 --iters 10]

For each stage: ``torch_eager_ms`` (plain NCHW module), ``torch_channels_last_ms`` (the torch backend's
default layout), ``onnxruntime_ms`` (exported ONNX, CPU provider, all graph optimisations), each the median
over ``--rounds`` interleaved rounds of ``--iters`` evaluations after warm-up, and the ratios
``onnxruntime_speedup_vs_torch_eager`` = torch_eager_ms / onnxruntime_ms (project target >= 1.3) and
``onnxruntime_speedup_vs_torch_channels_last``. Without ``--model`` the preset's architecture is timed with
random weights (weights do not change the cost).

``--omp-wait-policy`` (default PASSIVE, set before torch loads) matters on a shared CPU: with two torch threads
and the default policy, threads spinning at OpenMP barriers while the CPU was oversubscribed (two training
runs) made one small-preset evaluation take 0.9-1.3 s instead of 24-48 ms. ONNX Runtime has its own thread
pool and is not affected.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import statistics
import tempfile
import time


def stage_models(args) -> dict:
    """{stage: (StageConfig, module)} from a model folder or a preset with random weights."""
    import torch

    from rgbd_fusion_core.config import load_stage_config
    from rgbd_fusion_core.models import build_denoiser
    from rgbd_fusion_core.models.checkpoint import load_stage_model
    from rgbd_fusion_core.models.model_files import resolve_model_dir

    if args.model:
        return {stage: load_stage_model(path) for stage, path in zip((1, 2), resolve_model_dir(args.model))}
    torch.manual_seed(0)
    models = {}
    for stage in (1, 2):
        config = load_stage_config(args.preset, stage)
        module = build_denoiser(config.model).eval()
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.normal_(0, 0.05)
        models[stage] = (config, module)
    return models


def interleaved_medians(candidates: dict, rounds: int, iters: int) -> dict[str, float]:
    """Median milliseconds per call of each candidate, rounds interleaved so load changes hit all alike."""
    for call in candidates.values():
        for _ in range(3):
            call()
    samples = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, call in candidates.items():
            for _ in range(iters):
                start = time.perf_counter()
                call()
                samples[name].append(1000 * (time.perf_counter() - start))
    return {name: round(statistics.median(values), 3) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: --preset with random weights)")
    parser.add_argument("--preset", default="small", help="preset timed when no --model is given")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and ONNX Runtime intra-op threads")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "default"))
    args = parser.parse_args()
    if args.omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    import onnxruntime
    import torch

    from rgbd_fusion_core.export.onnx_export import example_inputs, export_stages
    from rgbd_fusion_core.inference.backends import make_backend
    from rgbd_fusion_core.runtime.graph_contract import read_export_metadata

    torch.set_num_threads(args.threads)
    models = stage_models(args)
    report = {
        "weights": args.model or f"random {args.preset} preset",
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "batch": 1,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "stages": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        export_stages({stage: (*models[stage], "benchmark") for stage in models}, folder)
        parity = {name: entry["parity_max_abs_error"] for name, entry in read_export_metadata(folder)["stages"].items()}
        for stage, (config, module) in models.items():
            inputs = example_inputs(config, 1)
            backends = {  # the torch backend converts its module in place: each gets its own copy
                "torch_eager_ms": make_backend("torch", config, copy.deepcopy(module), "cpu", channels_last=False),
                "torch_channels_last_ms": make_backend("torch", config, copy.deepcopy(module), "cpu"),
                "onnxruntime_ms": make_backend("onnxruntime", config, None, "cpu", source=folder, threads=args.threads),
            }
            calls = {name: functools.partial(backend, *inputs) for name, backend in backends.items()}
            ms = interleaved_medians(calls, args.rounds, args.iters)
            report["stages"][f"stage{stage}"] = {
                "resolution": config.resolution,
                **ms,
                "onnxruntime_speedup_vs_torch_eager": round(ms["torch_eager_ms"] / ms["onnxruntime_ms"], 3),
                "onnxruntime_speedup_vs_torch_channels_last": round(
                    ms["torch_channels_last_ms"] / ms["onnxruntime_ms"], 3
                ),
                "onnx_parity_max_abs_error": parity[f"stage{stage}"],
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
