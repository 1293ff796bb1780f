"""Depth units and "no depth", owned in one place.

In memory: float32 metres, NaN = no depth. On disk and on the wire (16-bit PNG, ROS ``16UC1``): uint16
millimetres, 0 = no depth; 65535 (a common "invalid" marker of depth cameras) is read as no depth and never
written, so the largest depth written is 65.534 m.
"""

from __future__ import annotations

import numpy as np

NO_DEPTH_MM = 0
INVALID_DEPTH_MM = 65535
MAX_DEPTH_MM = INVALID_DEPTH_MM - 1


def millimetres_to_metres(depth_mm: np.ndarray) -> np.ndarray:
    """(H, W) uint16 millimetres -> float32 metres, NaN where 0 or 65535."""
    depth_mm = np.asarray(depth_mm)
    metres = depth_mm.astype(np.float32) / 1000.0
    metres[(depth_mm == NO_DEPTH_MM) | (depth_mm == INVALID_DEPTH_MM)] = np.nan
    return metres


def metres_to_millimetres(depth_m: np.ndarray, strict: bool = False) -> np.ndarray:
    """(H, W) float metres (NaN, inf or <= 0 = none) -> uint16 millimetres, rounded, 0 = none.

    A depth beyond 65.534 m becomes 0 (no depth), or with ``strict`` a ValueError (for datasets, where it would
    be a corrupt sample rather than a far prediction).
    """
    millimetres = np.rint(np.asarray(depth_m, dtype=np.float64) * 1000.0)
    with np.errstate(invalid="ignore"):
        too_far = millimetres > MAX_DEPTH_MM
        if strict and too_far.any():
            raise ValueError(f"depth {np.nanmax(millimetres) / 1000:.3f} m does not fit 16-bit millimetres")
        millimetres[~(millimetres > 0) | too_far] = NO_DEPTH_MM
    return millimetres.astype(np.uint16)


def clean_metres(depth_m: np.ndarray) -> np.ndarray:
    """Float metres with every "no depth" (NaN, inf, <= 0) as NaN, float32."""
    depth = np.asarray(depth_m, dtype=np.float32).copy()
    with np.errstate(invalid="ignore"):
        depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth
