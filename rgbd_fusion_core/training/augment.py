"""Depth-noise augmentation of the stage-2 depth condition (Kirch et al. 2023, sec. 3.3).

With probability p per sample, Gaussian noise of standard deviation sigma_d ~ U[sigma_min, sigma_max] (network
units) is added to the FOREGROUND pixels of the low-resolution depth condition; background stays exactly -1 and
noisy foreground is kept above the threshold so the silhouette is unchanged.
"""

from __future__ import annotations

import torch

from rgbd_fusion_core.config import AugmentConfig


def augment_depth(
    depth: torch.Tensor, config: AugmentConfig, threshold: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """depth: (B, 1, h, w) network space in [-1, 1] -> same shape, noisy foreground."""
    if not config.enabled:
        return depth
    b = depth.shape[0]
    apply = torch.rand(b, generator=generator, device=depth.device) < config.probability
    sigma = config.sigma_min + (config.sigma_max - config.sigma_min) * torch.rand(
        b, generator=generator, device=depth.device
    )
    sigma = (sigma * apply).view(b, 1, 1, 1)
    noise = torch.randn(depth.shape, generator=generator, device=depth.device) * sigma
    foreground = depth > threshold
    noisy = (depth + noise).clamp(min=threshold + 1e-3, max=1.0)
    return torch.where(foreground, noisy, depth)
