"""Noise schedules: beta_t for t = 0..T-1 as float64 numpy arrays."""

from __future__ import annotations

import math

import numpy as np


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal (2021) eq. 17: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), betas clipped."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    t = np.arange(timesteps, dtype=np.float64)
    bars = np.array([alpha_bar(u) for u in t / timesteps] + [alpha_bar(1.0)])
    return np.minimum(1 - bars[1:] / bars[:-1], max_beta)


def linear_betas(timesteps: int) -> np.ndarray:
    """Ho et al. (2020): betas linear from 1e-4 to 0.02 at T=1000, scaled by 1000/T for other T."""
    scale = 1000 / timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)


def make_betas(schedule: str, timesteps: int) -> np.ndarray:
    if timesteps < 2:
        raise ValueError(f"need at least 2 diffusion timesteps, got {timesteps}")
    if schedule == "cosine":
        return cosine_betas(timesteps)
    if schedule == "linear":
        return linear_betas(timesteps)
    raise ValueError(f"unknown noise schedule {schedule!r}; choose 'cosine' or 'linear'")
