"""Pinhole camera helpers in the optical frame (REP 103: x right, y down, z forward), units in metres.

Pixel convention (OpenCV/ROS): the centre of pixel (row v, column u) sits at image coordinates (u, v), so a
W-wide image spans [-0.5, W - 0.5] and its centre is at (W - 1) / 2. A point (x, y, z) projects to
u = fx x / z + cx, v = fy y / z + cy.
"""

from __future__ import annotations

import numpy as np


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The (3, 3) float64 matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def crop_intrinsics(K: np.ndarray, x0: float, y0: float, size: float, out_size: int) -> np.ndarray:
    """Intrinsics of a square crop of side ``size`` pixels with top-left corner (x0, y0), resized to ``out_size``.

    The crop's pixel edge [x0 - 0.5, x0 + size - 0.5] maps onto [-0.5, out_size - 0.5]; with s = out_size / size:
    fx' = s fx, cx' = s (cx - x0 + 0.5) - 0.5 (same for y). A plain resize is a crop with x0 = y0 = 0.
    """
    K = np.asarray(K, dtype=np.float64)
    scale = out_size / float(size)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return intrinsics(fx * scale, fy * scale, scale * (cx - x0 + 0.5) - 0.5, scale * (cy - y0 + 0.5) - 0.5)


def scale_intrinsics(K: np.ndarray, in_size: int, out_size: int) -> np.ndarray:
    """Intrinsics after resizing a square image of side ``in_size`` to ``out_size`` (e.g. 256 -> 64: focal / 4)."""
    return crop_intrinsics(K, 0.0, 0.0, in_size, out_size)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) optical-frame points (z > 0) to (N, 2) pixel coordinates (u, v)."""
    points = np.asarray(points, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    z = points[:, 2]
    return np.stack([K[0, 0] * points[:, 0] / z + K[0, 2], K[1, 1] * points[:, 1] / z + K[1, 2]], axis=1)


def backproject(depth_m: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a (H, W) z-depth in metres (0/NaN = none) to points.

    Returns ``points`` (N, 3) float32 in the optical frame and ``pixels`` (N, 2) int64 as (row v, column u),
    one row per valid pixel in row-major order: x = (u - cx) z / fx, y = (v - cy) z / fy.
    """
    depth = np.asarray(depth_m)
    K = np.asarray(K, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    rows, cols = np.nonzero(valid)
    z = depth[rows, cols].astype(np.float64)
    x = (cols - K[0, 2]) * z / K[0, 0]
    y = (rows - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1).astype(np.float32), np.stack([rows, cols], axis=1).astype(np.int64)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera rotation R (3, 3) and translation t (3,) for a camera at ``eye`` looking at ``target``.

    A world point p maps to the optical frame as R p + t; the image's "up" (-y) follows the world ``up``.
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    norm = np.linalg.norm(right)
    if norm < 1e-9:
        raise ValueError("camera looks along the up vector; look_at is undefined")
    right /= norm
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ eye
