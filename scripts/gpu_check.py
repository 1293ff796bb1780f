"""The GPU paths in one run, on a machine with an NVIDIA GPU::

    python scripts/gpu_check.py --json gpu_check.json

Runs on the shipped model: torch on CUDA against torch on the CPU (parity, frames/s; the torch backend has no
CUDA-graph mode, so CUDA graphs are timed on TensorRT), ONNX Runtime's CUDA provider against torch, and, when
TensorRT is installed, fp32 and fp16 engine builds (with the layer precisions the engines really have), their
parity against torch and ONNX Runtime (fp16 at t >= 512, where fp16 rounding of the time embedding would show),
frames/s with and without CUDA graphs, and the engine cache (reused, rebuilt on another TensorRT version or a
larger batch). Each check is "passed", "failed" (with its figures or error) or "skipped" with the reason; the
warnings the package logged are kept. Exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

PARITY_BATCH = 4
FPS_FRAMES = 20
ENGINE_MAX_BATCH = 4


class Skip(Exception):
    """A check that cannot run on this machine; the message is the reason."""


def require_cuda() -> None:
    if not torch.cuda.is_available():
        raise Skip(
            f"no CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__}, CUDA {torch.version.cuda})"
        )


def require_tensorrt():
    require_cuda()
    try:
        import tensorrt
    except ImportError as error:
        raise Skip(f"TensorRT is not installed (pip install 'rgbd-fusion[tensorrt]'): {error}") from None
    return tensorrt


def require_ort_cuda() -> None:
    require_cuda()
    try:
        import onnxruntime as ort
    except ImportError:
        raise Skip("onnxruntime is not installed (pip install 'rgbd-fusion[onnx]')") from None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)")


class Setup:
    """The shipped model, its export and its engines, made on first use (in a temporary folder)."""

    def __init__(self, folder: Path):
        self.folder = folder

    @functools.cached_property
    def models(self) -> dict:
        from rgbd_fusion_core.models.checkpoint import load_stage_model
        from rgbd_fusion_core.models.model_files import resolve_model_dir

        return {s: load_stage_model(p, expected_stage=s) for s, p in zip((1, 2), resolve_model_dir(None))}

    @functools.cached_property
    def export_dir(self) -> Path:
        from rgbd_fusion_core.export.onnx_export import export_stages

        out = self.folder / "export"
        export_stages({s: (c, m, "shipped model") for s, (c, m) in self.models.items()}, out, verify=True)
        return out

    def onnx_path(self, stage: int) -> Path:
        from rgbd_fusion_core.runtime.graph_contract import load_exported_stage

        return load_exported_stage(self.export_dir, stage).onnx_path

    def torch_reference(self, stage: int, inputs, device: str) -> torch.Tensor:
        """The fp32 torch prediction (TF32 off) on ``device``."""
        module = copy.deepcopy(self.models[stage][1]).eval().to(device)
        with torch.no_grad(), tf32_off():
            return module(*(value.to(device) for value in inputs)).float().cpu()


class tf32_off:
    """TF32 convolutions and matmuls off inside (parity measures correctness, not TF32)."""

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *args):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def parity_inputs(config, t_min: int = 0, seed: int = 0):
    """Example inputs whose timesteps spread evenly over [t_min, T - 1]."""
    from rgbd_fusion_core.export.onnx_export import example_inputs

    x_t, _, cond = example_inputs(config, PARITY_BATCH, seed=seed)
    t = torch.linspace(t_min, config.diffusion.timesteps - 1, PARITY_BATCH).round()
    return x_t, t, cond


def compare(prediction: torch.Tensor, expected: torch.Tensor, relative_tolerance: float) -> dict:
    scale = max(1.0, float(expected.abs().max()))
    error = float((prediction.float().cpu() - expected).abs().max())
    return {"max_abs_error": error, "tolerance": relative_tolerance * scale, "ok": error <= relative_tolerance * scale}


def frames_per_second(pipeline) -> float:
    import numpy as np

    from rgbd_fusion_core.inference.pipeline_io import Frame

    rng = np.random.default_rng(0)
    frame = Frame(
        rgb=rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), K=np.array([[525.0, 0, 320], [0, 525, 240], [0, 0, 1]])
    )
    for _ in range(3):
        pipeline.run([frame])  # warm-up (CUDA graph capture, cuDNN autotuning)
    start = time.perf_counter()
    for _ in range(FPS_FRAMES):
        pipeline.run([frame])  # returns numpy: the GPU work is done
    return FPS_FRAMES / (time.perf_counter() - start)


def pipeline_on(setup: Setup, backend: str, **options):
    """A Pipeline of the shipped model on CUDA (one centred crop per frame, the node's sampler defaults)."""
    from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
    from rgbd_fusion_core.inference.backends import make_backend
    from rgbd_fusion_core.inference.pipeline import Pipeline, Stage
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig

    stages = []
    for config, module in setup.models.values():
        source = None if backend == "torch" else setup.export_dir
        denoiser = make_backend(backend, config, copy.deepcopy(module), "cuda", source=source, **options)
        stages.append(Stage(config, denoiser, GaussianDiffusion(config.diffusion)))
    return Pipeline(*stages, PipelineConfig(person_source="none"), "cuda", backend)


# --- the checks: each returns its figures ("ok": False marks a failure) or raises Skip -----------------------------
def torch_cuda_parity(setup: Setup) -> dict:
    require_cuda()
    result = {}
    for stage, (config, _) in setup.models.items():
        inputs = parity_inputs(config)
        result[f"stage{stage}"] = compare(
            setup.torch_reference(stage, inputs, "cuda"), setup.torch_reference(stage, inputs, "cpu"), 1e-3
        )
    return {**result, "ok": all(r["ok"] for r in result.values())}


def torch_cuda_fps(setup: Setup) -> dict:
    require_cuda()
    return {"frames_per_second": frames_per_second(pipeline_on(setup, "torch"))}


def torch_cuda_graph_fps(setup: Setup) -> dict:
    raise Skip("the torch backend has no CUDA-graph mode (runtime/torch_backend.py); see tensorrt_fps for CUDA graphs")


def onnxruntime_cuda_parity(setup: Setup) -> dict:
    require_ort_cuda()
    from rgbd_fusion_core.inference.backends import make_backend

    result = {}
    for stage, (config, _) in setup.models.items():
        denoiser = make_backend("onnxruntime", config, None, "cuda", source=setup.export_dir)
        inputs = parity_inputs(config)
        result[f"stage{stage}"] = {
            "providers": denoiser.session.get_providers(),
            **compare(denoiser(*inputs), setup.torch_reference(stage, inputs, "cpu"), 1e-3),
        }
    return {**result, "ok": all(r["ok"] for r in result.values())}


def tensorrt_build(setup: Setup) -> dict:
    trt = require_tensorrt()
    from rgbd_fusion_core.runtime.tensorrt_backend import EngineSettings, build_engine, sidecar_path_for

    result = {"tensorrt_version": trt.__version__}
    for fp16 in (False, True):
        for stage in setup.models:
            built = build_engine(
                setup.onnx_path(stage), EngineSettings(fp16=fp16, max_batch=ENGINE_MAX_BATCH), rebuild=True
            )
            sidecar = json.loads(sidecar_path_for(built.path).read_text())
            result[f"stage{stage}_{'fp16' if fp16 else 'fp32'}"] = {
                "seconds": round(built.seconds, 1),
                "layer_precisions": sidecar.get("layer_precisions"),
            }
    return result


def tensorrt_parity(setup: Setup) -> dict:
    require_tensorrt()
    from rgbd_fusion_core.runtime.onnxruntime_backend import OnnxRuntimeDenoiser
    from rgbd_fusion_core.runtime.tensorrt_backend import TensorRTDenoiser, engine_path_for

    result = {}
    for stage, (config, _) in setup.models.items():
        onnx_path = setup.onnx_path(stage)
        ort = OnnxRuntimeDenoiser(onnx_path, "cpu")
        for fp16, tolerance in ((False, 1e-3), (True, 1e-2)):
            engine = TensorRTDenoiser(engine_path_for(onnx_path, fp16), "cuda")
            inputs = parity_inputs(config, t_min=512 if fp16 else 0, seed=stage)
            prediction = engine(*(value.cuda() for value in inputs))
            result[f"stage{stage}_{'fp16' if fp16 else 'fp32'}"] = {
                "t": [int(v) for v in inputs[1]],
                "vs_torch": compare(prediction, setup.torch_reference(stage, inputs, "cuda"), tolerance),
                "vs_onnxruntime": compare(prediction, ort(*inputs), tolerance),
            }
    ok = all(r[key]["ok"] for r in result.values() for key in ("vs_torch", "vs_onnxruntime"))
    return {**result, "ok": ok}


def tensorrt_fps(setup: Setup) -> dict:
    require_tensorrt()
    result = {}
    for cuda_graph in (False, True):
        pipeline = pipeline_on(setup, "tensorrt", fp16=True, max_batch=ENGINE_MAX_BATCH, cuda_graph=cuda_graph)
        name = "cuda_graph" if cuda_graph else "plain"
        result[f"{name}_frames_per_second"] = frames_per_second(pipeline)
        if cuda_graph:  # False when a capture failed and the denoiser fell back to plain execution
            result["cuda_graph_active"] = all(s.denoiser.cuda_graph for s in (pipeline.stage1, pipeline.stage2))
    return result


def tensorrt_cache(setup: Setup) -> dict:
    require_tensorrt()
    from rgbd_fusion_core.runtime.tensorrt_backend import (
        EngineSettings,
        build_engine,
        engine_path_for,
        sidecar_path_for,
    )

    onnx_path = setup.onnx_path(2)
    settings = EngineSettings(fp16=True, max_batch=ENGINE_MAX_BATCH)
    build_engine(onnx_path, settings)
    reused = build_engine(onnx_path, settings)
    sidecar = sidecar_path_for(engine_path_for(onnx_path, fp16=True))
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "tensorrt_version": "0.0"}))
    version_change = build_engine(onnx_path, settings)
    batch_change = build_engine(onnx_path, EngineSettings(fp16=True, max_batch=2 * ENGINE_MAX_BATCH))
    steps = {"reused": reused, "version_change": version_change, "batch_change": batch_change}
    result = {name: {"built": step.built, "reason": step.reason} for name, step in steps.items()}
    ok = not reused.built and version_change.built and "tensorrt_version changed" in version_change.reason
    return {**result, "ok": ok and batch_change.built and "requested" in batch_change.reason}


CHECKS = (
    torch_cuda_parity,
    torch_cuda_fps,
    torch_cuda_graph_fps,
    onnxruntime_cuda_parity,
    tensorrt_build,
    tensorrt_parity,
    tensorrt_fps,
    tensorrt_cache,
)


def run_check(check, setup: Setup) -> dict:
    try:
        figures = check(setup)
    except Skip as reason:
        return {"status": "skipped", "reason": str(reason)}
    except Exception as error:  # a crash is this check's failure; the others still run
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    return {"status": "passed" if figures.pop("ok", True) else "failed", **figures}


def environment() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    for name in ("tensorrt", "onnxruntime"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


class WarningLog(logging.Handler):
    """Keeps the package's warnings for the report."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where the report is written")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings = WarningLog()
    logging.getLogger("rgbd_fusion_core").addHandler(warnings)
    report = {"environment": environment(), "checks": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        setup = Setup(Path(folder))
        for check in CHECKS:
            result = report["checks"][check.__name__] = run_check(check, setup)
            print(f"{check.__name__}: {result['status']} {result.get('reason') or result.get('error') or ''}".rstrip())
    report["warnings"] = warnings.messages
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["status"] == "failed" for r in report["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
