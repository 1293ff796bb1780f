"""Validation of a pipeline input Frame, with errors that name the field and the problem."""

from __future__ import annotations

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import Frame


def check_intrinsics(K, where: str = "K") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"{where}: intrinsics must be a finite 3x3 matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{where}: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]} (K all zeros?)")
    if not np.allclose(K[2], (0.0, 0.0, 1.0)):
        raise ValueError(f"{where}: last row of K must be [0, 0, 1], got {K[2].tolist()}")
    return K


def sensor_depth_metres(depth: np.ndarray) -> np.ndarray:
    """float depth is metres (NaN/0 = none); uint16 is millimetres (0 = none) -> float32 metres, NaN = none."""
    depth = np.asarray(depth)
    if depth.dtype == np.uint16:
        out = depth.astype(np.float32) / 1000.0
    elif np.issubdtype(depth.dtype, np.floating):
        out = depth.astype(np.float32)
    else:
        raise ValueError(f"sensor depth: dtype {depth.dtype} not understood (float metres or uint16 millimetres)")
    out[~np.isfinite(out) | (out <= 0)] = np.nan
    return out


def check_frame(frame: Frame, where: str = "frame") -> None:
    rgb = frame.rgb
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError(
            f"{where}: rgb must be a uint8 numpy array, got {type(rgb).__name__} {getattr(rgb, 'dtype', '')}"
        )
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{where}: rgb must have shape (H, W, 3), got {rgb.shape} (convert grayscale or RGBA first)")
    h, w = rgb.shape[:2]
    if h < 8 or w < 8:
        raise ValueError(f"{where}: image too small ({w}x{h}); need at least 8x8")
    check_intrinsics(frame.K, f"{where}: K")
    if frame.mask is not None:
        if np.shape(frame.mask) != (h, w):
            raise ValueError(f"{where}: mask shape {np.shape(frame.mask)} differs from the image's {(h, w)}")
        if not np.any(frame.mask):
            raise ValueError(f"{where}: mask is empty (no person pixels)")
    if frame.roi is not None and len(frame.roi) != 4:
        raise ValueError(f"{where}: roi must be (x, y, w, h), got {frame.roi}")
    if frame.sensor_depth is not None:
        if np.shape(frame.sensor_depth) != (h, w):
            raise ValueError(
                f"{where}: sensor depth shape {np.shape(frame.sensor_depth)} differs from the image's {(h, w)}"
            )
        if not np.isfinite(sensor_depth_metres(frame.sensor_depth)).any():
            raise ValueError(f"{where}: sensor depth has no valid pixels (all NaN or zero)")
