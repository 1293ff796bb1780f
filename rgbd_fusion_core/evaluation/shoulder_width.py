"""Shoulder width of a point cloud: the metric-scale check a person can judge by eye (an adult's shoulder joints
are about 0.3-0.4 m apart), scored the same way on real photos (no truth) and on renders (against the truth).

The width is the 3D distance between the depth map's points at the two shoulder keypoints, back-projected through
K. It is a distance between surface points, not between joints: for a person turned away from the camera the far
shoulder's keypoint falls on the nearer chest, so the width is below the joints' distance (on 84 validation renders
the truth's own width measured this way had a median of 0.25 m and was below 0.25 m for half of them).
"""

from __future__ import annotations

import numpy as np

from rgbd_fusion_core.evaluation.keypoint_order import VISIBLE, depth_near
from rgbd_fusion_core.people.person import LEFT_SHOULDER, RIGHT_SHOULDER


def shoulder_width(depth: np.ndarray, K: np.ndarray, keypoints_2d) -> tuple[float | None, str]:
    """depth (H, W) metres (NaN = no depth), K (3, 3) of that map, keypoints_2d (33, 3) x, y in its pixels and
    visibility, or None. Returns (width in metres or None, status): "ok", "not visible" (no keypoints, or a
    shoulder's visibility below 0.5) or "no depth" (no depth in the 7x7 window at a visible shoulder)."""
    if keypoints_2d is None:
        return None, "not visible"
    points = []
    for index in (LEFT_SHOULDER, RIGHT_SHOULDER):
        x, y, visibility = (float(v) for v in keypoints_2d[index])
        if visibility < VISIBLE:
            return None, "not visible"
        z = depth_near(depth, x, y)
        if not np.isfinite(z):
            return None, "no depth"
        points.append(np.linalg.solve(K, [x, y, 1.0]) * z)
    return float(np.linalg.norm(points[0] - points[1])), "ok"
