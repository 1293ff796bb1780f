"""Image files on disk: PNG (8/16-bit), float depth (.npy/.exr), colour maps. OpenCV underneath.

Every reader raises ``ValueError`` or ``FileNotFoundError`` naming the file; writers are atomic (a temporary
file in the same folder, then ``os.replace``) and deterministic (same array -> same bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rgbd_fusion_core.io.atomic import write_bytes_atomic
from rgbd_fusion_core.io.depth_units import clean_metres, metres_to_millimetres, millimetres_to_metres

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must be set before cv2 is imported
import cv2  # noqa: E402


def _read_raw(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image (unreadable or corrupt): {path}")
    return image


def read_rgb(path) -> np.ndarray:
    """An 8-bit colour PNG as (H, W, 3) uint8 in RGB order (grey images are expanded to 3 channels)."""
    path = Path(path)
    image = _read_raw(path)
    if image.dtype != np.uint8:
        raise ValueError(f"RGB image must be 8-bit, got {image.dtype} in {path}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path) -> np.ndarray:
    """An 8-bit single-channel mask PNG as (H, W) bool (non-zero = person)."""
    path = Path(path)
    image = _read_raw(path)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"mask must be an 8-bit single-channel image, got {image.dtype} {image.shape} in {path}")
    return image > 0


def read_depth_m(path, unit: str = "mm") -> np.ndarray:
    """Depth as (H, W) float32 metres, NaN where there is no depth (``depth_units``).

    ``unit="mm"``: a 16-bit single-channel PNG in millimetres (0 or 65535 = no depth).
    ``unit="m"``: a float ``.npy`` or ``.exr`` in metres (NaN, inf and values <= 0 = no depth).
    """
    path = Path(path)
    if unit == "mm":
        image = _read_raw(path)
        if image.dtype != np.uint16 or image.ndim != 2:
            raise ValueError(
                f"millimetre depth must be a 16-bit single-channel PNG, got {image.dtype} {image.shape} in {path}"
            )
        return millimetres_to_metres(image)
    if unit != "m":
        raise ValueError(f"unknown depth unit {unit!r} (expected 'mm' or 'm') for {path}")
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"depth file not found: {path}")
        try:
            depth = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"cannot read depth array (corrupt .npy?): {path}: {error}") from error
    elif path.suffix.lower() == ".exr":
        if path.is_file() and not cv2.haveImageReader(str(path)):
            raise ValueError(f"this OpenCV build cannot read EXR files; convert to .npy: {path}")
        depth = _read_raw(path)
        if depth.ndim == 3:
            depth = depth[:, :, 0]
    else:
        raise ValueError(f"metric depth must be .npy or .exr, got {path}")
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"metric depth must be a 2-D float array, got {depth.dtype} {depth.shape} in {path}")
    return clean_metres(depth)


def encode_png(image: np.ndarray, rgb: bool = False) -> bytes:
    """PNG bytes of a uint8/uint16 (H, W) or (H, W, 3) array; ``rgb=True`` means channels are in RGB order."""
    if rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} {image.shape} array as PNG")
    return data.tobytes()


def write_rgb(path, rgb: np.ndarray) -> None:
    """(H, W, 3) uint8 RGB to an 8-bit PNG (atomic)."""
    write_bytes_atomic(path, encode_png(rgb, rgb=True))


def write_mask(path, mask: np.ndarray) -> None:
    """(H, W) bool to an 8-bit PNG with 0/255 (atomic)."""
    write_bytes_atomic(path, encode_png(np.where(mask, 255, 0).astype(np.uint8)))


def write_depth_mm(path, depth_m: np.ndarray) -> None:
    """(H, W) metres to a 16-bit PNG in millimetres, 0 = no depth (atomic)."""
    write_bytes_atomic(path, encode_png(metres_to_millimetres(depth_m, strict=True)))


def colorize_depth(depth_m: np.ndarray, near: float | None = None, far: float | None = None) -> np.ndarray:
    """(H, W) metres (0/NaN = none) to (H, W, 3) uint8 RGB with the TURBO colour map, near = red, none = black.

    ``near``/``far`` default to the 2nd/98th percentile of the valid depth.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros((*depth.shape, 3), np.uint8)
    if not valid.any():
        return out
    near = float(np.percentile(depth[valid], 2)) if near is None else near
    far = float(np.percentile(depth[valid], 98)) if far is None else far
    scaled = 1.0 - (depth - near) / max(far - near, 1e-6)
    grey = np.clip(np.nan_to_num(scaled) * 255.0, 0, 255).astype(np.uint8)
    coloured = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[valid] = coloured[valid]
    return out
