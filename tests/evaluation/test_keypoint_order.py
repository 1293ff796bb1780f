"""Keypoint depth order: pairs compared only when the reference separates them, NaN and hidden keypoints left out."""

import math

import numpy as np

from rgbd_fusion_core.evaluation.keypoint_order import depth_near, order_against_truth, order_agreement


def test_only_pairs_at_least_ten_centimetres_apart_count():
    reference = [1.00, 1.20, 1.05, math.nan]
    assert order_agreement(reference, [2.0, 2.5, 2.4, 1.0]) == (2, 2)  # 1.0 vs 1.05: too close
    assert order_agreement(reference, [2.5, 2.0, 2.4, 1.0]) == (0, 2)
    assert order_agreement(reference, [2.0, math.nan, 2.4, 1.0]) == (0, 0)


def test_order_against_truth_reads_both_maps_at_visible_keypoints():
    truth = np.full((40, 40), np.nan, np.float32)
    truth[:, :20], truth[:, 20:] = 1.0, 1.5  # left half nearer
    predicted = truth.copy()
    keypoints = [[5, 5, 0.9], [30, 5, 0.9], [30, 30, 0.1], [80, 5, 1.0]]  # hidden and off-image ones left out
    assert order_against_truth(predicted, truth, keypoints) == (1, 1)
    assert order_against_truth(predicted[:, ::-1], truth, keypoints) == (0, 1)
    assert math.isnan(depth_near(np.full((9, 9), np.nan), 4, 4))
