"""The person crop: a square box in input pixels, and cutting it out (zero padding past the image edge)."""

from __future__ import annotations

import cv2
import numpy as np


def square_around(x_min: float, y_min: float, x_max: float, y_max: float, margin: float) -> tuple[int, int, int]:
    """(x0, y0, size): the square centred on a box (inclusive pixel bounds), side = longer side * (1 + 2 margin)."""
    side = max(x_max - x_min + 1, y_max - y_min + 1) * (1 + 2 * margin)
    size = max(1, int(round(side)))
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    return int(round(cx - (size - 1) / 2)), int(round(cy - (size - 1) / 2)), size


def mask_box(mask: np.ndarray, margin: float) -> tuple[int, int, int]:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("mask: empty (no person pixels), cannot place the crop")
    return square_around(cols.min(), rows.min(), cols.max(), rows.max(), margin)


def roi_box(roi: tuple[int, int, int, int], shape: tuple[int, int], margin: float) -> tuple[int, int, int]:
    x, y, w, h = roi
    if w <= 0 or h <= 0 or x >= shape[1] or y >= shape[0] or x + w <= 0 or y + h <= 0:
        raise ValueError(f"roi: {roi} (x, y, w, h) is empty or outside the {shape[1]}x{shape[0]} image")
    return square_around(x, y, x + w - 1, y + h - 1, margin)


def centre_box(shape: tuple[int, int]) -> tuple[int, int, int]:
    """The largest centred square inside an (H, W) image."""
    h, w = shape
    size = min(h, w)
    return (w - size) // 2, (h - size) // 2, size


def overlap(box: tuple[int, int, int], shape: tuple[int, int]):
    """(image slices, box slices) of the part of a square box inside an (H, W) image; None if they miss."""
    x0, y0, size = box
    h, w = shape
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    if sx1 <= sx0 or sy1 <= sy0:
        return None
    return (slice(sy0, sy1), slice(sx0, sx1)), (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))


def cut(image: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """image[y0:y0+size, x0:x0+size] with zero padding where the box leaves the image."""
    size = box[2]
    out = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    parts = overlap(box, image.shape[:2])
    if parts:
        out[parts[1]] = image[parts[0]]
    return out


def paste(crop: np.ndarray, box: tuple[int, int, int], shape: tuple[int, int], fill: float = np.nan) -> np.ndarray:
    """Inverse of ``cut`` for a (size, size) crop: an (H, W) float32 image, ``fill`` outside the box."""
    full = np.full(shape, fill, dtype=np.float32)
    parts = overlap(box, shape)
    if parts:
        full[parts[0]] = crop[parts[1]]
    return full


def resize_area(image: np.ndarray, out_size: int) -> np.ndarray:
    """Colour/mask resize: area averaging when shrinking, bilinear when enlarging."""
    interp = cv2.INTER_AREA if image.shape[0] >= out_size else cv2.INTER_LINEAR
    return cv2.resize(image, (out_size, out_size), interpolation=interp)


def resize_nearest(image: np.ndarray, out_size: int) -> np.ndarray:
    """Depth resize: centre-aligned nearest neighbour, so no depth is invented across a silhouette edge."""
    return cv2.resize(image, (out_size, out_size), interpolation=cv2.INTER_NEAREST_EXACT)
