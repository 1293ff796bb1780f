"""Per-stage denoiser ONNX export (dynamic batch, fixed H/W) with a metadata file the runtimes read.

The folder layout and graph contract live in ``rgbd_fusion_core.runtime.graph_contract``.

Exporter and opset: torch's TorchScript-based exporter (``dynamo=False``) at opset 17, which ONNX Runtime and
TensorRT >= 8.6 parse. It is deprecated since torch 2.9 (still present in 2.13) but was chosen over the
torch.export-based one because, measured here, it exports a stage in about 1 s instead of 10-30 s, writes a
valid opset-17 graph (the other one's down-conversion to 17 emits an invalid ``Split``), and ONNX Runtime ran
both graphs equally fast. Should torch drop it, ``dynamo=True`` with opset 18 exports these denoisers with the
same parity (about 2e-7 measured).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from rgbd_fusion_core.config import StageConfig, to_dict
from rgbd_fusion_core.io.atomic import atomic_path, write_text_atomic
from rgbd_fusion_core.io.hashing import sha256_file
from rgbd_fusion_core.models.checkpoint import weights_sha256
from rgbd_fusion_core.runtime.graph_contract import (
    FORMAT,
    INPUT_NAMES,
    METADATA,
    OUTPUT_NAME,
    VERSION,
    ExportError,
    read_export_metadata,
    stage_shapes,
)

DEFAULT_OPSET = 17
MIN_OPSET = 14  # scaled_dot_product_attention
PARITY_TOLERANCE = 1e-4  # max abs error, fp32, ONNX Runtime vs torch
EXPORT_BATCH = 2  # example batch for tracing (a batch of 1 invites the tracer to fold the batch axis away)


def example_inputs(config: StageConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (x_t ~ N(0, 1), t ~ U[0, T), cond ~ U[-1, 1]) float32 inputs of a stage."""
    generator = torch.Generator().manual_seed(seed)
    model, size = config.model, config.resolution
    x_t = torch.randn(batch, model.in_channels, size, size, generator=generator)
    t = torch.rand(batch, generator=generator) * (config.diffusion.timesteps - 1)
    cond = torch.rand(batch, model.cond_channels, size, size, generator=generator) * 2 - 1
    return x_t, t, cond


def export_stage_onnx(module: nn.Module, config: StageConfig, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``module`` (a float32 CPU denoiser of ``config`` in eval mode) as ONNX at ``path`` (atomically)."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is not supported; the denoisers need opset >= {MIN_OPSET}")
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            example_inputs(config, EXPORT_BATCH),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
            do_constant_folding=True,
        )
        declare_output_shape(tmp, config)
    return path


def declare_output_shape(onnx_path: Path, config: StageConfig) -> None:
    """Write the output's static (C_out, H, W) into the graph: the tracer leaves them symbolic after a pixel
    shuffle, and runtimes allocate output buffers from the declared shape."""
    import onnx

    model = onnx.load(str(onnx_path))
    (output,) = model.graph.output
    dims = output.type.tensor_type.shape.dim
    for dim, value in zip(dims, stage_shapes(config)[OUTPUT_NAME]):
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = value
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def onnx_parity_error(module: nn.Module, config: StageConfig, onnx_path: str | Path, batches=(1, 3)) -> float:
    """Max abs difference between ONNX Runtime (CPU, fp32) and the (float32 CPU) module over random inputs."""
    from rgbd_fusion_core.runtime.onnxruntime_backend import OnnxRuntimeDenoiser

    session = OnnxRuntimeDenoiser(onnx_path, device="cpu")
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            inputs = example_inputs(config, batch, seed=batch)
            expected = module(*inputs)
            worst = max(worst, float((session(*inputs) - expected).abs().max()))
    return worst


def export_stages(
    stages: dict[int, tuple[StageConfig, nn.Module, str]],
    out_dir: str | Path,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
) -> Path:
    """Export ``{stage: (config, module, source description)}`` into ``out_dir``; returns ``export.json``'s path.

    With ``verify`` each ONNX is run in ONNX Runtime against torch (batches 1 and 3) and must agree within
    ``PARITY_TOLERANCE``; the measured error is recorded in the metadata. The given modules are left untouched
    (a float32 CPU copy in eval mode is exported). Other stages already exported there with the same opset stay
    listed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    if (out_dir / METADATA).exists():
        previous = read_export_metadata(out_dir)
        if previous["opset"] == opset:
            entries = previous["stages"]
    for stage, (config, module, source) in sorted(stages.items()):
        if config.stage != stage:
            raise ExportError(f"{source}: holds a stage-{config.stage} model, given as stage {stage}")
        module = copy.deepcopy(module).float().cpu().eval()
        onnx_path = export_stage_onnx(module, config, out_dir / f"stage{stage}.onnx", opset)
        entry = {
            "onnx": onnx_path.name,
            "sha256": sha256_file(onnx_path),
            "config": to_dict(config),
            "inputs": {name: shape for name, shape in stage_shapes(config).items() if name in INPUT_NAMES},
            "outputs": {OUTPUT_NAME: stage_shapes(config)[OUTPUT_NAME]},
            "source": str(source),
            "weights_sha256": weights_sha256(module),
        }
        if verify:
            error = onnx_parity_error(module, config, onnx_path)
            if not error <= PARITY_TOLERANCE:
                raise ExportError(
                    f"{onnx_path}: ONNX Runtime differs from torch by {error:.3g} (tolerance {PARITY_TOLERANCE})"
                )
            entry["parity_max_abs_error"] = error
        entries[f"stage{stage}"] = entry
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "opset": opset,
        "exporter": f"torch.onnx.export(dynamo=False), torch {torch.__version__}",
        "stages": dict(sorted(entries.items())),
    }
    metadata_path = out_dir / METADATA
    write_text_atomic(metadata_path, json.dumps(metadata, indent=2) + "\n")
    return metadata_path
