"""Device names: one parser for 'auto', 'cpu', 'cuda' and 'cuda:N', used by the Pipeline, the node and the CLI."""

from __future__ import annotations

import re

import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_HELP = "'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'"


def check_device_name(name: str) -> str:
    """``name`` when it is a device name this package accepts; ValueError naming it otherwise."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        raise ValueError(f"expected {DEVICE_HELP}, got {name!r}")
    return name


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """'auto' -> the local CUDA device when present, else CPU; 'cuda' without a GPU is an error."""
    if isinstance(name, torch.device):
        return name
    check_device_name(name)
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but no CUDA GPU is available")
    return device
