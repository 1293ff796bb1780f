"""Shoulder width of a cloud: back-projected distance between the shoulders, depth difference included."""

import numpy as np
import pytest

from rgbd_fusion_core.evaluation.shoulder_width import shoulder_width


def test_shoulder_width_is_the_distance_between_back_projected_shoulders():
    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    depth = np.full((80, 100), 2.0, np.float32)
    depth[:, 70:] = 2.3  # the right shoulder's side 0.3 m farther
    keypoints = np.zeros((33, 3))
    keypoints[11] = [30, 40, 0.9]  # left shoulder: x = (30 - 50) * 2.0 / 100 = -0.4 m
    keypoints[12] = [80, 40, 0.9]  # right shoulder: x = (80 - 50) * 2.3 / 100 = 0.69 m
    width, status = shoulder_width(depth, K, keypoints)
    assert status == "ok" and width == pytest.approx(np.hypot(0.69 + 0.4, 0.3), abs=1e-5)
    keypoints[12, 2] = 0.2
    assert shoulder_width(depth, K, keypoints) == (None, "not visible")
    keypoints[12, 2] = 0.9
    depth[:, 70:] = np.nan
    assert shoulder_width(depth, K, keypoints) == (None, "no depth")
    assert shoulder_width(depth, K, None) == (None, "not visible")
