"""How each stage's condition is built from images (used by training, evaluation and the Pipeline alike).

Stage 1: cond = RGB at 64x64, (B, 3, 64, 64) in [-1, 1]; with ``conditioning: rgb_pose`` the person finder's
three pose channels follow (B, 6, 64, 64), see ``people/pose_channels.py``.
Stage 2: cond = RGB at full resolution (B, 3, R, R) concatenated with the 64x64 depth upsampled by nearest
neighbour to R, (B, 4, R, R). The paper upsampled the 64x64 RGB bilinearly instead; we feed the full-resolution
RGB crop, which the pipeline has anyway and which carries the detail stage 2 should add.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_network(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]: the one scaling used in training and inference."""
    return torch.from_numpy(np.ascontiguousarray(images)).movedim(-1, -3).float().div(127.5).sub(1.0)


def rgb_from_network(rgb: torch.Tensor) -> np.ndarray:
    """Inverse of ``rgb_to_network``: (3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((rgb.movedim(-3, -1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def stage2_condition(rgb_high: torch.Tensor, depth_low: torch.Tensor) -> torch.Tensor:
    """rgb_high (B, 3, R, R), depth_low (B, 1, r, r) in network space -> (B, 4, R, R)."""
    depth_up = F.interpolate(depth_low, size=rgb_high.shape[-2:], mode="nearest")
    return torch.cat([rgb_high, depth_up], dim=1)


def stage1_condition(rgb_low: torch.Tensor, pose_low: torch.Tensor | None, conditioning: str) -> torch.Tensor:
    """rgb_low (B, 3, r, r) [+ pose_low (B, 3, r, r)] -> the stage-1 condition for ``conditioning``
    ("rgb": RGB alone; "rgb_pose": RGB then the pose channels)."""
    if conditioning == "rgb":
        return rgb_low
    if pose_low is None:
        raise ValueError("this stage-1 model is pose-conditioned: it needs the person finder's pose channels")
    return torch.cat([rgb_low, pose_low.to(rgb_low.device)], dim=1)
