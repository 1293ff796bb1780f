"""A per-user cache of exported stages, so ONNX-based backends can start from a loaded torch model.

The cache key is a fingerprint of the stage config, every weight, the opset and the torch version, so a changed
model never reuses a stale export. Location: ``$RGBD_FUSION_CACHE``, else ``$XDG_CACHE_HOME/rgbd-fusion``, else
``~/.cache/rgbd-fusion``; exports live under ``onnx/<fingerprint>/`` (TensorRT engines are cached beside them).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from rgbd_fusion_core.config import StageConfig, to_dict
from rgbd_fusion_core.export.onnx_export import DEFAULT_OPSET, export_stages
from rgbd_fusion_core.models.checkpoint import weights_sha256
from rgbd_fusion_core.runtime.graph_contract import ExportedStage, ExportError, load_exported_stage

# Bumped when the exported graph changes for the same weights (2: the space-to-depth input as a one-hot strided
# convolution instead of reshape + 6-D transpose), so the cache never serves an older graph.
GRAPH_REVISION = 2


def cache_root() -> Path:
    if os.environ.get("RGBD_FUSION_CACHE"):
        return Path(os.environ["RGBD_FUSION_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rgbd-fusion"


def model_fingerprint(config: StageConfig, module: nn.Module, opset: int) -> str:
    """sha256 (hex, first 24 digits) over the config, all weights (name, dtype, shape, bytes), opset, torch version
    and the graph revision."""
    digest = hashlib.sha256()
    digest.update(json.dumps(to_dict(config), sort_keys=True).encode())
    digest.update(f"opset={opset} torch={torch.__version__} graph={GRAPH_REVISION}".encode())
    digest.update(weights_sha256(module).encode())
    return digest.hexdigest()[:24]


def cached_stage_export(
    config: StageConfig, module: nn.Module, source: str, opset: int = DEFAULT_OPSET
) -> ExportedStage:
    """The verified export of ``module`` from the cache, exporting it (seconds) on first use."""
    folder = cache_root() / "onnx" / model_fingerprint(config, module, opset)
    try:
        return load_exported_stage(folder, config.stage)
    except ExportError:
        export_stages({config.stage: (config, module, source)}, folder, opset=opset, verify=True)
        return load_exported_stage(folder, config.stage)
