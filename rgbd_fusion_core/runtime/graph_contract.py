"""The exported-graph contract: what ``rgbd-fusion export`` writes and the runtimes read.

An *export folder* holds ``stage1.onnx`` and/or ``stage2.onnx`` plus ``export.json``::

    {"format": "rgbd-fusion-onnx", "version": 1, "opset": 17, "exporter": "...",
     "stages": {"stage1": {"onnx": "stage1.onnx", "sha256": "...", "config": {StageConfig},
                           "inputs": {"x_t": ["batch", 1, 64, 64], "t": ["batch"], "cond": ["batch", 3, 64, 64]},
                           "outputs": {"prediction": ["batch", C_out, 64, 64]}, "source": "...",
                           "weights_sha256": "...",
                           "parity_max_abs_error": 1.4e-07}}}

Graph: inputs ``x_t`` (B, C_in, H, W) float32, ``t`` (B,) float32 timestep indices, ``cond`` (B, C_cond, H, W)
float32; output ``prediction`` (B, C_out, H, W) float32; B is dynamic, H = W = the stage's resolution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rgbd_fusion_core.config import StageConfig, stage_config_from_dict
from rgbd_fusion_core.io.hashing import sha256_file

FORMAT = "rgbd-fusion-onnx"
VERSION = 1
METADATA = "export.json"
INPUT_NAMES = ("x_t", "t", "cond")
OUTPUT_NAME = "prediction"


class ExportError(RuntimeError):
    """An export folder that is missing, corrupt, or inconsistent with what is asked of it."""


@dataclass(frozen=True)
class ExportedStage:
    """One stage of an export folder: its config and the path of its verified ONNX file."""

    config: StageConfig
    onnx_path: Path
    sha256: str
    weights_sha256: str | None = None  # of the weights it was exported from (``models.checkpoint.weights_sha256``)


def stage_shapes(config: StageConfig) -> dict[str, list]:
    """Graph input/output shapes of a stage, batch axis named "batch"."""
    model, size = config.model, config.resolution
    return {
        "x_t": ["batch", model.in_channels, size, size],
        "t": ["batch"],
        "cond": ["batch", model.cond_channels, size, size],
        OUTPUT_NAME: ["batch", model.out_channels, size, size],
    }


def read_export_metadata(folder: str | Path) -> dict:
    path = Path(folder) / METADATA
    if not path.exists():
        raise ExportError(f"not an export folder: {path} is missing (run `rgbd-fusion export` first)")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: corrupt export metadata ({error})") from error
    if metadata.get("format") != FORMAT or metadata.get("version") != VERSION:
        raise ExportError(f"{path}: not an rgbd-fusion export (format {metadata.get('format')!r})")
    return metadata


def load_exported_stage(folder: str | Path, stage: int, check_hash: bool = True) -> ExportedStage:
    """The config and ONNX path of one stage of an export folder; the ONNX's sha256 is checked by default."""
    folder = Path(folder)
    metadata = read_export_metadata(folder)
    entry = metadata["stages"].get(f"stage{stage}")
    if entry is None:
        raise ExportError(f"{folder / METADATA}: has no stage {stage} (stages: {sorted(metadata['stages'])})")
    onnx_path = folder / entry["onnx"]
    if not onnx_path.exists():
        raise ExportError(f"{onnx_path}: listed in {METADATA} but missing")
    if check_hash and sha256_file(onnx_path) != entry["sha256"]:
        raise ExportError(f"{onnx_path}: corrupt or modified (sha256 differs from {METADATA}); export again")
    config = stage_config_from_dict(entry["config"], f"{folder / METADATA}:stage{stage}")
    return ExportedStage(config, onnx_path, entry["sha256"], entry.get("weights_sha256"))
