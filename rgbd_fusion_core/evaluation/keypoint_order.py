"""Depth order of body keypoints: do predicted depths put pairs of keypoints in the same near/far order as a
reference (the ground truth on renders, the person finder's 3D keypoints on real photos)?

Only pairs whose reference depths differ by at least ``MIN_GAP_M`` count, so the score says whether the
prediction gets the body's depth structure (a hand in front of the chest, the far shoulder behind the near one),
not noise between keypoints at the same depth. Chance is 0.5.
"""

from __future__ import annotations

import math

import numpy as np

MIN_GAP_M = 0.10  # reference depth difference in metres below which a pair is not compared
VISIBLE = 0.5  # keypoint visibility above which a keypoint counts
HALF_WINDOW = 3  # depth at a keypoint: median of the finite values in a 7x7 window


def depth_near(depth: np.ndarray, x: float, y: float) -> float:
    """Median finite depth (metres) of (H, W) ``depth`` in the window around pixel (x, y); NaN if none."""
    h, w = depth.shape
    xi, yi = int(round(x)), int(round(y))
    if not (0 <= xi < w and 0 <= yi < h):
        return math.nan
    patch = depth[max(0, yi - HALF_WINDOW) : yi + HALF_WINDOW + 1, max(0, xi - HALF_WINDOW) : xi + HALF_WINDOW + 1]
    patch = patch[np.isfinite(patch)]
    return float(np.median(patch)) if patch.size else math.nan


def order_agreement(reference_z, predicted_z) -> tuple[int, int]:
    """(agreeing pairs, compared pairs) over all pairs of keypoints with finite depths in both sequences whose
    reference depths differ by >= MIN_GAP_M; a pair agrees when the predicted difference has the same sign."""
    kept = [(r, p) for r, p in zip(reference_z, predicted_z) if np.isfinite(r) and np.isfinite(p)]
    agree = total = 0
    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            gap = kept[i][0] - kept[j][0]
            if abs(gap) >= MIN_GAP_M:
                total += 1
                agree += int(np.sign(gap) == np.sign(kept[i][1] - kept[j][1]))
    return agree, total


def order_against_truth(predicted: np.ndarray, truth: np.ndarray, keypoints_2d) -> tuple[int, int]:
    """(agreeing, compared) pairs of the visible keypoints (K, 3: x, y, visibility in pixels of the depth maps),
    with depths read from (H, W) predicted and true metric depth (NaN = no depth)."""
    visible = [(x, y) for x, y, vis in np.asarray(keypoints_2d, dtype=np.float64) if vis >= VISIBLE]
    return order_agreement(
        [depth_near(truth, x, y) for x, y in visible], [depth_near(predicted, x, y) for x, y in visible]
    )
