"""Inference backends behind one call, so the sampling loop is written once::

    denoiser = make_backend("onnxruntime", stage_config, module, device="cpu")
    prediction = denoiser(x_t, t, cond)

x_t (B, C_in, H, W), t (B,) timestep indices and cond (B, C_cond, H, W) are float32 torch tensors on any
device; the prediction (B, C_out, H, W) float32 comes back on ``denoiser.device``.

- ``torch``: the eager module (CPU or CUDA).
- ``onnxruntime``: the stage's ONNX in ONNX Runtime; device "cpu", "cuda[:N]" or "tensorrt[:N]" (execution
  provider).
- ``tensorrt``: a native TensorRT engine built from the same ONNX (device "cuda[:N]"), fp16 by default like
  ``rgbd-fusion build-engine``; a batch above its ``max_batch`` (people x uncertainty samples) runs in parts.

The ONNX-based backends take the ONNX from ``source`` when it is an ``.onnx`` file or an export folder, and
otherwise export ``module`` once into the per-user cache (``rgbd_fusion_core.export.onnx_cache``). Choosing a
backend (and exporting on demand) is inference's job; ``rgbd_fusion_core.runtime`` only runs graphs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from rgbd_fusion_core.config import StageConfig
from rgbd_fusion_core.models.checkpoint import weights_sha256
from rgbd_fusion_core.runtime import BACKENDS, Denoiser
from rgbd_fusion_core.runtime.graph_contract import METADATA, ExportError, load_exported_stage


def resolve_backend(name: str, device: torch.device) -> str:
    """'auto' -> the fastest backend installed for ``device``: ONNX Runtime on the CPU when it is installed
    (about 1.7x eager torch per frame here, see docs/RESULTS.md), else torch; other names unchanged."""
    if name != "auto":
        return name
    if device.type == "cpu" and importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    return "torch"


def make_backend(
    kind: str,
    stage_config: StageConfig,
    module: nn.Module | None = None,
    device: str | torch.device = "cpu",
    source: str | Path | None = None,
    **options,
) -> Denoiser:
    """A denoiser of one stage on a backend.

    module: the stage's torch denoiser (required for "torch"; exported on demand for the others).
    source: where the model came from: a ``.safetensors`` file or run folder (only named in messages), or an
    ``.onnx`` file / export folder of this stage that the ONNX-based backends use as is.
    options: torch: ``channels_last``; onnxruntime: ``threads``, ``spin``; tensorrt: ``fp16``, ``max_batch``,
    ``opt_batch``, ``workspace_mb`` (see ``EngineSettings``), ``rebuild``, ``cuda_graph``.
    """
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; choose from {list(BACKENDS)}")
    if kind == "torch":
        if module is None:
            raise ValueError("the torch backend needs the stage's torch module")
        from rgbd_fusion_core.runtime.torch_backend import TorchDenoiser

        return TorchDenoiser(module, device, **options)
    onnx_path = stage_onnx(stage_config, module, source)
    if kind == "onnxruntime":
        from rgbd_fusion_core.runtime.onnxruntime_backend import OnnxRuntimeDenoiser

        return OnnxRuntimeDenoiser(onnx_path, device, **options)
    from rgbd_fusion_core.runtime.tensorrt_backend import EngineSettings, TensorRTDenoiser, build_engine

    rebuild = options.pop("rebuild", False)
    cuda_graph = options.pop("cuda_graph", False)
    engine = build_engine(onnx_path, EngineSettings(**options), device, rebuild=rebuild)
    return TensorRTDenoiser(engine.path, device, cuda_graph=cuda_graph)


def stage_onnx(stage_config: StageConfig, module: nn.Module | None, source: str | Path | None) -> Path:
    """The ONNX file of a stage: ``source`` when it is one (or an export folder), else a cached export."""
    from rgbd_fusion_core.export.onnx_cache import cached_stage_export

    if source is not None and Path(source).suffix == ".onnx":
        if not Path(source).exists():
            raise FileNotFoundError(f"ONNX file not found: {source}")
        return Path(source)
    if source is not None and (Path(source) / METADATA).exists():
        exported = load_exported_stage(source, stage_config.stage)
        if exported.config != stage_config:
            raise ExportError(f"{source}: its stage-{stage_config.stage} config differs from the model being run")
        if module is not None and exported.weights_sha256 not in (None, weights_sha256(module)):
            raise ExportError(
                f"{source}: its stage-{stage_config.stage} ONNX was exported from other weights than the model being "
                "run (export or quantize again for this model)"
            )
        return exported.onnx_path
    if module is None:
        raise ValueError("ONNX-based backends need an .onnx file, an export folder or the torch module to export")
    return cached_stage_export(stage_config, module, str(source or "in-memory module")).onnx_path
