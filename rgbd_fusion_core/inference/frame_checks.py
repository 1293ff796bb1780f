"""Validation of a pipeline input Frame, with errors that name the field and the problem."""

from __future__ import annotations

import dataclasses

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import Frame
from rgbd_fusion_core.io.depth_units import millimetres_to_metres

MAX_FOCAL_PX = 1e6  # no real camera has a focal length near a million pixels
FOCAL_TO_IMAGE = (0.05, 100.0)  # fx, fy per pixel of the image's larger side: ~170 deg down to ~0.6 deg FOV
PRINCIPAL_POINT_MARGIN = 0.5  # cx, cy may lie this fraction of the image size outside it (off-centre crops)
MIN_SENSOR_DEPTH_M, MAX_SENSOR_DEPTH_M = 0.05, 20.0  # outside this range a sensor depth is "no depth"


def check_intrinsics(K, where: str = "K", image_size: tuple[int, int] | None = None) -> np.ndarray:
    """K as a (3, 3) float64 array, or ``ValueError`` naming the implausible entry (fx, fy, cx, cy, ...).

    image_size: (width, height) of the image K is for; with it, the focal lengths must be plausible for that
    size (``FOCAL_TO_IMAGE``) and the principal point must lie near the image (``PRINCIPAL_POINT_MARGIN``).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"{where}: intrinsics must be a 3x3 matrix, got shape {K.shape}")
    names = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "skew": K[0, 1]}
    for name, value in names.items():
        if not np.isfinite(value):
            raise ValueError(f"{where}: {name} is {value} (intrinsics must be finite)")
    if not np.isfinite(K).all():
        raise ValueError(f"{where}: intrinsics must be finite, got {K.tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{where}: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]} (K all zeros?)")
    for name in ("fx", "fy"):
        if names[name] > MAX_FOCAL_PX:
            raise ValueError(f"{where}: {name}={names[name]:g} px is implausible (more than {MAX_FOCAL_PX:g} px)")
    if not np.allclose(K[2], (0.0, 0.0, 1.0)):
        raise ValueError(f"{where}: last row of K must be [0, 0, 1], got {K[2].tolist()}")
    if image_size is not None:
        width, height = image_size
        low, high = (ratio * max(width, height) for ratio in FOCAL_TO_IMAGE)
        for name in ("fx", "fy"):
            if not low <= names[name] <= high:
                raise ValueError(
                    f"{where}: {name}={names[name]:g} px is implausible for a {width}x{height} image "
                    f"(expected {low:g} to {high:g} px)"
                )
        for name, size in (("cx", width), ("cy", height)):
            margin = PRINCIPAL_POINT_MARGIN * size
            if not -margin <= names[name] <= size + margin:
                raise ValueError(
                    f"{where}: {name}={names[name]:g} px lies far outside the {width}x{height} image "
                    f"(expected {-margin:g} to {size + margin:g} px)"
                )
    return K


def sensor_depth_metres(
    depth: np.ndarray, min_m: float = MIN_SENSOR_DEPTH_M, max_m: float = MAX_SENSOR_DEPTH_M
) -> np.ndarray:
    """float depth is metres; uint16 is millimetres -> float32 metres, NaN = none.

    "No depth": non-finite values, values outside [min_m, max_m] (0 included), and the uint16 maximum 65535.
    """
    depth = np.asarray(depth)
    if depth.dtype == np.uint16:
        out = millimetres_to_metres(depth)
    elif np.issubdtype(depth.dtype, np.floating):
        out = depth.astype(np.float32)
    else:
        raise ValueError(f"sensor depth: dtype {depth.dtype} not understood (float metres or uint16 millimetres)")
    with np.errstate(invalid="ignore"):
        out[~np.isfinite(out) | (out < min_m) | (out > max_m)] = np.nan
    return out


def check_frame(frame: Frame, where: str = "frame") -> Frame:
    """The frame, validated, with its sensor depth (if any) as float32 metres, NaN = none: what the Pipeline
    works on, so nothing downstream checks or converts again. ValueError naming the field otherwise."""
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
    check_intrinsics(frame.K, f"{where}: K", image_size=(w, h))
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
        metres = sensor_depth_metres(frame.sensor_depth)
        if not np.isfinite(metres).any():
            raise ValueError(
                f"{where}: sensor depth has no valid pixels (all NaN, zero, 65535 mm or outside "
                f"{MIN_SENSOR_DEPTH_M:g}-{MAX_SENSOR_DEPTH_M:g} m)"
            )
        return dataclasses.replace(frame, sensor_depth=metres)
    return frame
