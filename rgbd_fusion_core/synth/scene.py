"""Random cameras and lights for one synthetic view, framed like the paper's person crops.

The camera orbits the person (yaw all around, pitch from slightly below to above), has a random field of view
and a slightly off-centre principal point (as a crop out of a larger image would), and is placed so the body's
projected bounding box is centred (with a small offset) and its longer side fills 70-95 % of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgbd_fusion_core.geometry.camera import intrinsics, look_at
from rgbd_fusion_core.synth.render import Lighting

FILL_RANGE = (0.70, 0.95)
FOV_RANGE_DEG = (30.0, 70.0)
PITCH_RANGE_DEG = (-10.0, 25.0)
PRINCIPAL_JITTER = 0.06  # principal point offset, fraction of the image side


@dataclass(frozen=True)
class ViewSetup:
    """Random parameters of one view (angles in degrees, ``fill`` and offsets as fractions of the image side)."""

    yaw_deg: float
    pitch_deg: float
    fov_deg: float
    fill: float
    box_offset: tuple[float, float]
    principal_offset: tuple[float, float]
    lighting: Lighting

    def intrinsics(self, size: int):
        """(3, 3) K of the ``size`` x ``size`` image."""
        focal = 0.5 * size / np.tan(np.radians(self.fov_deg) / 2)
        centre = (size - 1) / 2
        return intrinsics(
            focal, focal, centre + self.principal_offset[0] * size, centre + self.principal_offset[1] * size
        )


def sample_view(rng: np.random.Generator) -> ViewSetup:
    fill = rng.uniform(*FILL_RANGE)
    max_offset = 0.8 * (1.0 - fill) / 2
    theta = np.radians(rng.uniform(0.0, 70.0))  # light angle away from the camera's viewing direction
    phi = rng.uniform(0.0, 2 * np.pi)
    direction = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), -np.cos(theta)])
    if direction[1] > 0 and rng.uniform() < 0.7:
        direction[1] = -direction[1]  # mostly lit from above (optical y points down)
    return ViewSetup(
        yaw_deg=rng.uniform(0.0, 360.0),
        pitch_deg=rng.uniform(*PITCH_RANGE_DEG),
        fov_deg=rng.uniform(*FOV_RANGE_DEG),
        fill=fill,
        box_offset=tuple(rng.uniform(-max_offset, max_offset, size=2)),
        principal_offset=tuple(rng.uniform(-PRINCIPAL_JITTER, PRINCIPAL_JITTER, size=2)),
        lighting=Lighting(tuple(direction), intensity=rng.uniform(0.45, 0.9), ambient=rng.uniform(0.15, 0.45)),
    )


def frame_camera(vertices: np.ndarray, view: ViewSetup, size: int, iterations: int = 8):
    """World-to-camera (R (3, 3), t (3,)) that frames ``vertices`` (V, 3), world Z up, body facing -Y.

    The camera looks at the bounding-box centre from yaw/pitch (yaw 0 = in front of the person); t is then solved
    by fixed-point iteration so the projected box's longer side is ``fill * size`` pixels and its centre sits at
    the image centre plus ``box_offset * size``.
    """
    K = view.intrinsics(size)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    target = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    yaw, pitch = np.radians(view.yaw_deg), np.radians(view.pitch_deg)
    direction = np.array([np.cos(pitch) * np.sin(yaw), -np.cos(pitch) * np.cos(yaw), np.sin(pitch)])
    R, _ = look_at(target + direction, target)
    local = (vertices - target) @ R.T
    goal_u = (size - 1) / 2 + view.box_offset[0] * size
    goal_v = (size - 1) / 2 + view.box_offset[1] * size
    goal_side = view.fill * size
    extent = np.ptp(local[:, :2], axis=0).max()
    t = np.array([0.0, 0.0, fx * extent / goal_side + np.abs(local[:, 2]).max()])
    for _ in range(iterations):
        z = local[:, 2] + t[2]
        u = fx * (local[:, 0] + t[0]) / z + cx
        v = fy * (local[:, 1] + t[1]) / z + cy
        t[0] += (goal_u - (u.min() + u.max()) / 2) * t[2] / fx
        t[1] += (goal_v - (v.min() + v.max()) / 2) * t[2] / fy
        t[2] *= max(np.ptp(u), np.ptp(v)) / goal_side
    return R, t - R @ target
