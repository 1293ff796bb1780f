"""Pictures of a result: a point-cloud view (numpy z-buffer splatting) and the RGB | depth | cloud figure."""

from __future__ import annotations

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import PipelineResult
from rgbd_fusion_core.io.imageio import colorize_depth


def pointcloud_view(
    points: np.ndarray, colors: np.ndarray, K: np.ndarray, size: int, yaw_deg: float = 40.0
) -> np.ndarray:
    """(size, size, 3) uint8: the cloud (N, 3) metres, turned by ``yaw_deg`` about the vertical axis through its
    centroid, projected with K (nearest point wins, 2x2 splats). White background."""
    image = np.full((size, size, 3), 255, np.uint8)
    if len(points) == 0:
        return image
    centre = points.mean(axis=0)
    a = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    p = (points - centre) @ rot.T + centre
    z = p[:, 2]
    keep = z > 1e-3
    u = np.round(K[0, 0] * p[keep, 0] / z[keep] + K[0, 2]).astype(int)
    v = np.round(K[1, 1] * p[keep, 1] / z[keep] + K[1, 2]).astype(int)
    zs, cs = z[keep], colors[keep]
    order = np.argsort(-zs)  # far first, near last: near points overwrite
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u[order] + du, v[order] + dv
            ok = (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size)
            image[vv[ok], uu[ok]] = cs[order][ok]
    return image


def result_figure(result: PipelineResult) -> np.ndarray:
    """(256, 768, 3) uint8: RGB crop | colour-mapped depth | point-cloud view."""
    size = result.rgb_crop.shape[0]
    return np.concatenate(
        [
            result.rgb_crop,
            colorize_depth(result.depth),
            pointcloud_view(result.points, result.colors, result.K_crop, size),
        ],
        axis=1,
    )
