"""Checkpoints: training state (``checkpoint.pt``) and stage models (``*.safetensors``). Loading never executes
code: training state goes through ``torch.load(weights_only=True)`` and models through safetensors.

A stage model file holds the EMA weights and, in its metadata, the ``StageConfig`` as JSON (key ``config``),
so it rebuilds its own denoiser. A *model folder* holds ``stage1.safetensors`` and ``stage2.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rgbd_fusion_core.config import StageConfig, stage_config_from_dict, to_dict
from rgbd_fusion_core.io.atomic import atomic_path
from rgbd_fusion_core.models import build_denoiser

FORMAT = "rgbd-fusion-stage"
TRAINING_STATE = "checkpoint.pt"
RUN_MODEL = "model.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or does not match what it is loaded into."""


def save_stage_model(path: str | Path, config: StageConfig, state_dict: dict, half: bool = False) -> None:
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in state_dict.items()}
    metadata = {"format": FORMAT, "version": "1", "config": json.dumps(to_dict(config))}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_stage_config(path: str | Path) -> StageConfig:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors model file ({error})") from error
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path}: not an rgbd-fusion stage model (metadata format={metadata.get('format')!r})")
    return stage_config_from_dict(json.loads(metadata["config"]), str(path))


def stage_model_path(path: str | Path) -> Path:
    """A ``.safetensors`` file, or a training run folder (its ``model.safetensors``)."""
    path = Path(path)
    if path.is_dir():
        path = path / RUN_MODEL
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}")
    return path


def load_stage_model(path: str | Path, expected_stage: int | None = None) -> tuple[StageConfig, nn.Module]:
    """(config, denoiser in eval mode, float32) from a stage model file or run folder."""
    path = stage_model_path(path)
    config = read_stage_config(path)
    if expected_stage is not None and config.stage != expected_stage:
        raise CheckpointError(f"{path}: holds a stage-{config.stage} model, expected stage {expected_stage}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: corrupt model file ({error})") from error
    model = build_denoiser(config.model)
    load_state_checked(model, {k: v.float() for k, v in tensors.items()}, str(path))
    return config, model.eval()


def weights_sha256(module: nn.Module) -> str:
    """sha256 (hex) over every weight of ``module`` as float32 (name, shape, bytes, in name order): which weights
    an export was made from, whatever file or dtype they were loaded from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().float().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def load_state_checked(model: nn.Module, state: dict, where: str) -> None:
    """load_state_dict with an error that names missing, unexpected and mis-shaped tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where}: weights do not match the model built from its config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {shapes[:5]})"
        )
    model.load_state_dict(state)


def save_training_state(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no training checkpoint at {path} (nothing to resume)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt pickles/zips
        raise CheckpointError(f"{path}: corrupt or unreadable training checkpoint ({error})") from error
