"""How each stage's condition is built from images (used by training, evaluation and the Pipeline alike).

Stage 1: cond = RGB at 64x64, (B, 3, 64, 64) in [-1, 1].
Stage 2: cond = RGB at full resolution (B, 3, R, R) concatenated with the 64x64 depth upsampled by nearest
neighbour to R, (B, 4, R, R). The paper upsampled the 64x64 RGB bilinearly instead; we feed the full-resolution
RGB crop, which the pipeline has anyway and which carries the detail stage 2 should add.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def stage2_condition(rgb_high: torch.Tensor, depth_low: torch.Tensor) -> torch.Tensor:
    """rgb_high (B, 3, R, R), depth_low (B, 1, r, r) in network space -> (B, 4, R, R)."""
    depth_up = F.interpolate(depth_low, size=rgb_high.shape[-2:], mode="nearest")
    return torch.cat([rgb_high, depth_up], dim=1)
