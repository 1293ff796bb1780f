"""Random cameras and lights for one synthetic view, framed like the paper's person crops.

The camera orbits the person (yaw all around, pitch from slightly below to above), has a random field of view
and a slightly off-centre principal point (as a crop out of a larger image would), and is placed so the body's
projected bounding box is centred (with a small offset) and its longer side fills 70-95 % of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    framing: str = "full"

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


def frame_camera(
    vertices: np.ndarray, view: ViewSetup, size: int, iterations: int = 8, anchor: np.ndarray | None = None
):
    """World-to-camera (R (3, 3), t (3,)) that frames ``vertices`` (V, 3), world Z up, body facing -Y.

    The camera looks at the bounding-box centre from yaw/pitch (yaw 0 = in front of the person); t is then solved
    by fixed-point iteration so the projected box's longer side is ``fill * size`` pixels and its centre sits at
    the image centre plus ``box_offset * size``. With ``anchor`` (V,) bool only those vertices are framed (upper
    body, head and shoulders); the camera then stays at least ``MIN_CAMERA_DISTANCE_M`` from the framed part and
    0.2 m in front of every vertex.
    """
    everything = vertices
    if anchor is not None:
        vertices = vertices[anchor]
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
    if anchor is not None:
        nearest = ((everything - target) @ R.T)[:, 2].min()
        t[2] = max(t[2], MIN_CAMERA_DISTANCE_M, 0.2 - nearest)
    return R, t - R @ target


# --- randomisations beyond the paper's framing (each drawn from its own per-sample random stream) ---------------

FRAMINGS = ("full", "upper_body", "head_shoulders", "cut")
FRAMING_WEIGHTS = (0.4, 0.25, 0.15, 0.2)
MIN_CAMERA_DISTANCE_M = 0.5


def sample_framing(rng: np.random.Generator, view: ViewSetup) -> ViewSetup:
    """``view`` re-framed as a full body, an upper body (hips up), head and shoulders, or a body cut by the crop
    edge (10-40 % of its box outside, mostly at the bottom)."""
    framing = FRAMINGS[int(rng.choice(len(FRAMINGS), p=FRAMING_WEIGHTS))]
    if framing == "full":
        return view
    if framing == "cut":
        fill = rng.uniform(0.75, 1.1)
        outside = rng.uniform(0.1, 0.4)
        side = int(rng.choice(4, p=(0.4, 0.25, 0.25, 0.1)))  # bottom, left, right, top
        shift = 0.5 + outside * fill - fill / 2
        along = rng.uniform(-0.1, 0.1)
        offset = [(along, shift), (-shift, along), (shift, along), (along, -shift)][side]
        return replace(view, framing=framing, fill=fill, box_offset=tuple(float(o) for o in offset))
    fill = rng.uniform(0.7, 1.0) if framing == "upper_body" else rng.uniform(0.55, 0.9)
    max_offset = max(0.0, 0.8 * (1.0 - fill) / 2)
    offset = tuple(float(o) for o in rng.uniform(-max_offset, max_offset, size=2))
    return replace(view, framing=framing, fill=fill, box_offset=offset)


def colour_temperature_rgb(kelvin: float) -> np.ndarray:
    """Approximate rgb (green = 1) of a light of ``kelvin`` (2500-8000 K): warm orange to cool blue."""
    warm, neutral, cool = np.array([1.0, 0.72, 0.45]), np.array([1.0, 1.0, 1.0]), np.array([0.78, 0.87, 1.0])
    if kelvin <= 5500:
        t = np.clip((kelvin - 2500) / 3000, 0, 1)
        return warm + t * (neutral - warm)
    t = np.clip((kelvin - 5500) / 2500, 0, 1)
    return neutral + t * (cool - neutral)


def _light_direction(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    theta = np.radians(rng.uniform(0.0, max_angle_deg))
    phi = rng.uniform(0.0, 2 * np.pi)
    direction = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), -np.cos(theta)])
    if direction[1] > 0 and rng.uniform() < 0.7:
        direction[1] = -direction[1]
    return direction


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """2-3 directional lights (key, fill, sometimes a rim light from behind) of varied colour temperature and
    direction, a tinted ambient term and a specular term."""
    key_kelvin = rng.uniform(2700, 7500)
    extra = []
    for index in range(int(rng.integers(1, 3))):
        direction = _light_direction(rng, 80.0 if index == 0 else 160.0)  # the second extra light may be a rim light
        colour = colour_temperature_rgb(rng.uniform(2700, 7500)) * rng.uniform(0.1, 0.45)
        extra.append((tuple(direction.tolist()), tuple(colour.tolist())))
    return Lighting(
        direction=tuple(_light_direction(rng, 70.0).tolist()),
        intensity=float(rng.uniform(0.45, 0.95)),
        ambient=float(rng.uniform(0.1, 0.4)),
        colour=tuple(colour_temperature_rgb(key_kelvin).tolist()),
        ambient_colour=tuple(colour_temperature_rgb(rng.uniform(3500, 8000)).tolist()),
        extra=tuple(extra),
        specular=float(rng.uniform(0.0, 0.25)),
        shininess=float(np.exp(rng.uniform(np.log(4.0), np.log(48.0)))),
    )


def _box(corners_min: np.ndarray, corners_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box with separate vertices per face (flat shading): (24, 3) vertices, (12, 3) faces."""
    lo, hi = corners_min, corners_max
    quads = []
    for axis in range(3):
        for end in (lo[axis], hi[axis]):
            a, b = [i for i in range(3) if i != axis]
            quad = []
            for ua, ub in ((0, 0), (1, 0), (1, 1), (0, 1)):
                p = np.empty(3)
                p[axis] = end
                p[a] = (lo[a], hi[a])[ua]
                p[b] = (lo[b], hi[b])[ub]
                quad.append(p)
            quads.append(quad)
    vertices = np.array(quads).reshape(-1, 3)
    faces = np.array(
        [[4 * q, 4 * q + 1, 4 * q + 2] for q in range(6)] + [[4 * q, 4 * q + 2, 4 * q + 3] for q in range(6)]
    )
    return vertices, faces


def _cylinder(centre_x: float, centre_z: float, radius: float, y0: float, y1: float, segments: int = 24):
    """Vertical (optical y) open cylinder: (2 * segments, 3) vertices, (2 * segments, 3) faces."""
    angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([centre_x + radius * np.cos(angles), np.zeros(segments), centre_z + radius * np.sin(angles)], 1)
    top, bottom = ring.copy(), ring.copy()
    top[:, 1], bottom[:, 1] = y0, y1
    vertices = np.concatenate([top, bottom])
    i = np.arange(segments)
    j = (i + 1) % segments
    faces = np.concatenate([np.stack([i, j, i + segments], 1), np.stack([j, j + segments, i + segments], 1)])
    return vertices, faces


def sample_occluder(rng: np.random.Generator, camera_vertices: np.ndarray, K: np.ndarray, size: int):
    """An object between the camera and the person: a table/desk edge rising from the image bottom, a pillar or
    a floating box, covering part of the person's projected box. Returns (vertices (N, 3) optical frame, faces
    (M, 3), description dict)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    z = camera_vertices[:, 2]
    u = fx * camera_vertices[:, 0] / z + cx
    v = fy * camera_vertices[:, 1] / z + cy
    u0, u1 = np.clip([u.min(), u.max()], 0, size)
    v0, v1 = np.clip([v.min(), v.max()], 0, size)
    near = float(z.min())
    depth = rng.uniform(max(0.25, 0.4 * near), max(0.3, near - 0.15)) if near > 0.45 else 0.6 * near
    depth = float(max(depth, 0.12))
    kind = ["table", "pillar", "box"][int(rng.choice(3, p=(0.45, 0.3, 0.25)))]

    def back(uu, vv):
        return (uu - cx) * depth / fx, (vv - cy) * depth / fy

    thickness = float(rng.uniform(0.05, 0.4))
    if kind == "table":
        top = v1 - rng.uniform(0.15, 0.5) * (v1 - v0)
        x0, y0 = back(-0.2 * size, top)
        x1, y1 = back(1.2 * size, 1.3 * size)
        vertices, faces = _box(np.array([x0, y0, depth]), np.array([x1, y1, depth + thickness]))
    elif kind == "pillar":
        width_px = rng.uniform(0.08, 0.35) * size
        centre = rng.uniform(u0, u1)
        radius = width_px / 2 * depth / fx
        x, _ = back(centre, cy)
        _, y0 = back(0, -0.3 * size)
        _, y1 = back(0, 1.3 * size)
        vertices, faces = _cylinder(x, depth + radius, radius, y0, y1)
    else:
        w, h = rng.uniform(0.15, 0.45) * (u1 - u0 + 1), rng.uniform(0.1, 0.35) * (v1 - v0 + 1)
        uc, vc = rng.uniform(u0, u1), rng.uniform(v0, v1)
        x0, y0 = back(uc - w, vc - h)
        x1, y1 = back(uc + w, vc + h)
        vertices, faces = _box(np.array([x0, y0, depth]), np.array([x1, y1, depth + thickness]))
    return vertices.astype(np.float64), faces.astype(np.uint32), {"kind": kind, "depth_m": round(depth, 3)}
