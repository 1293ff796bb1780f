"""Cost of one denoiser evaluation, counted by torch's FLOP counter (a multiply-add counts as 2 FLOP)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from rgbd_fusion_core.config import StageConfig


@torch.no_grad()
def denoiser_gflop(model: torch.nn.Module, config: StageConfig, batch: int = 1) -> float:
    """GFLOP of one forward pass at the stage's resolution, per sample."""
    r, m = config.resolution, config.model
    x = torch.zeros(batch, m.in_channels, r, r)
    cond = torch.zeros(batch, m.cond_channels, r, r)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, torch.zeros(batch), cond)
    return counter.get_total_flops() / 1e9 / batch
