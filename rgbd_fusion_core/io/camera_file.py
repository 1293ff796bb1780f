"""Reading camera intrinsics from YAML/JSON: ROS camera_info YAML (camera_matrix.data), a 3x3 ``K``, or
``fx, fy, cx, cy`` keys; from a photo's EXIF (its 35 mm equivalent focal length); and a default pinhole guess
when neither is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from rgbd_fusion_core.geometry.camera import intrinsics
from rgbd_fusion_core.inference.frame_checks import check_intrinsics

SIZE_KEYS = (("image_width", "image_height"), ("width", "height"))  # ROS camera_info YAML, then plain keys


def _numbers(path: Path, field: str, value, count: int) -> np.ndarray:
    """``count`` numbers from ``value``, or ``ValueError`` naming the file and the field."""
    try:
        numbers = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {field} must be numbers ({error})") from None
    if numbers.size != count:
        raise ValueError(f"{path}: {field} must hold {count} numbers, got {numbers.size}")
    return numbers


def _stated_size(path: Path, data: dict) -> tuple[int, int] | None:
    """(width, height) the file says it was calibrated for, or None when it does not say."""
    for width_key, height_key in SIZE_KEYS:
        if width_key in data or height_key in data:
            size = _numbers(path, f"{width_key}/{height_key}", [data.get(width_key), data.get(height_key)], 2)
            if not (np.all(size > 0) and np.all(size == np.round(size))):
                raise ValueError(f"{path}: {width_key}/{height_key} must be positive whole numbers, got {size}")
            return int(size[0]), int(size[1])
    return None


def read_camera_file(path: str | Path, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """K (3, 3) from a camera file; every error names the file and the field.

    image_size: (width, height) of the image it will be used with. A file that states another size
    (``image_width``/``image_height`` or ``width``/``height``) is refused with both sizes named; with a size,
    the intrinsics must also be plausible for it (focal length, principal point).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"camera file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid YAML/JSON ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with K, camera_matrix or fx/fy/cx/cy")
    if "camera_matrix" in data:
        matrix = data["camera_matrix"]
        if not isinstance(matrix, dict) or "data" not in matrix:
            raise ValueError(f"{path}: camera_matrix must be a mapping with a 'data' list of 9 numbers")
        K = _numbers(path, "camera_matrix.data", matrix["data"], 9).reshape(3, 3)
    elif "K" in data or "k" in data:
        key = "K" if "K" in data else "k"
        K = _numbers(path, key, data[key], 9).reshape(3, 3)
    elif {"fx", "fy", "cx", "cy"} <= set(data):
        fx, fy, cx, cy = (_numbers(path, key, data[key], 1)[0] for key in ("fx", "fy", "cx", "cy"))
        K = intrinsics(fx, fy, cx, cy)
    else:
        raise ValueError(f"{path}: no intrinsics found (keys: K, camera_matrix.data, or fx/fy/cx/cy)")
    stated = _stated_size(path, data)
    if image_size is not None and stated is not None and tuple(stated) != tuple(image_size):
        raise ValueError(
            f"{path}: the camera file is for a {stated[0]}x{stated[1]} image but the image is "
            f"{image_size[0]}x{image_size[1]} (calibrate for this size, or scale fx, fy, cx, cy by the size ratio)"
        )
    return check_intrinsics(K, str(path), image_size)


def default_intrinsics(width: int, height: int, horizontal_fov_deg: float = 60.0) -> np.ndarray:
    """A pinhole guess: the given horizontal field of view, square pixels, centred principal point."""
    return centred_intrinsics((width / 2) / np.tan(np.deg2rad(horizontal_fov_deg) / 2), width, height)


def centred_intrinsics(f: float, width: int, height: int) -> np.ndarray:
    """K (3, 3) with focal length ``f`` pixels, square pixels and the principal point at the image centre."""
    return intrinsics(f, f, (width - 1) / 2, (height - 1) / 2)


FULL_FRAME_DIAGONAL_MM = 43.27  # a 36 x 24 mm frame: what "35 mm equivalent" focal lengths refer to
EXIF_IFD, FOCAL_LENGTH_35MM = 0x8769, 0xA405  # the Exif sub-IFD and its FocalLengthIn35mmFilm tag


def exif_intrinsics(path: str | Path, width: int, height: int) -> np.ndarray | None:
    """Pinhole K (3, 3) of a photo from its EXIF FocalLengthIn35mmFilm (phones and most cameras write it): the
    focal length in pixels is f35 / 43.27 mm times the image diagonal in pixels (the 35 mm equivalent is defined
    on the diagonal, so orientation and aspect ratio do not matter); square pixels, centred principal point.
    width, height: the image as read. None when the file has no such tag (PNGs, stripped JPEGs) or it is 0."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            focal_35mm = image.getexif().get_ifd(EXIF_IFD).get(FOCAL_LENGTH_35MM)
    except (OSError, ValueError):
        return None
    if not focal_35mm or float(focal_35mm) <= 0:
        return None
    return centred_intrinsics(
        float(focal_35mm) / FULL_FRAME_DIAGONAL_MM * float(np.hypot(width, height)), width, height
    )


def photo_intrinsics(path: str | Path, width: int, height: int) -> tuple[np.ndarray, str]:
    """A photo's K (3, 3) without a calibration file: from its EXIF (``exif_intrinsics``), else the 60 degree
    guess (``default_intrinsics``). Returns (K, where it came from, in words)."""
    K = exif_intrinsics(path, width, height)
    if K is not None:
        return K, "the photo's EXIF 35 mm equivalent focal length"
    return default_intrinsics(width, height), "a 60 degree horizontal field of view (no EXIF focal length)"
