"""Reading camera intrinsics from YAML/JSON: ROS camera_info YAML (camera_matrix.data), a 3x3 ``K``, or
``fx, fy, cx, cy`` keys; and a default pinhole guess when no calibration is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from rgbd_fusion_core.geometry.camera import intrinsics
from rgbd_fusion_core.inference.frame_checks import check_intrinsics


def read_camera_file(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"camera file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML/JSON ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with K, camera_matrix or fx/fy/cx/cy")
    if "camera_matrix" in data:
        K = np.asarray(data["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
    elif "K" in data or "k" in data:
        K = np.asarray(data.get("K", data.get("k")), dtype=np.float64).reshape(3, 3)
    elif {"fx", "fy", "cx", "cy"} <= set(data):
        K = intrinsics(data["fx"], data["fy"], data["cx"], data["cy"])
    else:
        raise ValueError(f"{path}: no intrinsics found (keys: K, camera_matrix.data, or fx/fy/cx/cy)")
    return check_intrinsics(K, str(path))


def default_intrinsics(width: int, height: int, horizontal_fov_deg: float = 60.0) -> np.ndarray:
    """A pinhole guess: the given horizontal field of view, square pixels, centred principal point."""
    f = (width / 2) / np.tan(np.deg2rad(horizontal_fov_deg) / 2)
    return intrinsics(f, f, (width - 1) / 2, (height - 1) / 2)
