"""Denoisers: ``build_denoiser(ModelConfig)`` -> module with ``forward(x_t, t, cond) -> prediction``."""

from __future__ import annotations

from torch import nn

from rgbd_fusion_core.config import ModelConfig
from rgbd_fusion_core.models.unet import UNet
from rgbd_fusion_core.models.unet3plus import UNet3Plus

ARCHITECTURES = {"unet": UNet, "unet3plus": UNet3Plus}


def build_denoiser(config: ModelConfig) -> nn.Module:
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.architecture](config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
