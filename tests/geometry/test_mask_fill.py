"""Filling a person's mask where the network left it empty: from the skeleton's depths, else from the neighbours."""

from __future__ import annotations

import numpy as np

from rgbd_fusion_core.geometry.mask_fill import fill_from_skeleton, fill_to_mask
from rgbd_fusion_core.people.person import LEFT_ELBOW, LEFT_SHOULDER, LEFT_WRIST, NUM_KEYPOINTS
from rgbd_fusion_core.people.pose_channels import skeleton_depth


def test_fill_to_mask_grows_the_person_over_its_mask_from_the_nearest_depths():
    depth = np.full((30, 30), np.nan, np.float32)
    depth[10:20, 10:15], depth[10:20, 15:20] = 1.0, 2.0
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True
    filled = fill_to_mask(depth, mask)
    assert np.isfinite(filled[mask]).all() and np.isnan(filled[~mask]).all()
    np.testing.assert_array_equal(filled[10:20, 10:20], depth[10:20, 10:20])  # predicted depth kept
    assert filled[15, 5] == 1.0 and filled[15, 24] == 2.0  # each side continues its nearest body depth
    assert np.isnan(fill_to_mask(np.full((8, 8), np.nan, np.float32), np.ones((8, 8), bool))).all()


def arm_reaching_forward(size: int = 64):
    """Keypoints of one arm in a (size, size) crop: shoulder at the left, wrist at the right, the wrist 0.5 m
    nearer the camera than the shoulder. Returns (keypoints_2d (33, 3), keypoints_3d (33, 3))."""
    keypoints_2d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    keypoints_3d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for index, x, z in ((LEFT_SHOULDER, 8, 0.5), (LEFT_ELBOW, 32, 0.25), (LEFT_WRIST, 56, 0.0)):
        keypoints_2d[index] = (x, size // 2, 1.0)
        keypoints_3d[index, 2] = z
    return keypoints_2d, keypoints_3d


def test_fill_from_skeleton_gives_an_unpredicted_arm_the_depth_of_its_bones():
    keypoints_2d, keypoints_3d = arm_reaching_forward()
    skeleton, nearer = skeleton_depth(keypoints_2d, keypoints_3d, 64, depth_scale=1.0)
    assert skeleton[32, 8:57].all() and skeleton.sum() < 64 * 4
    depth = np.full((64, 64), np.nan, np.float32)
    depth[26:38, 4:14] = 3.0  # the network saw only the shoulder, at 3 m
    mask = np.zeros((64, 64), bool)
    mask[28:37, 4:60] = True  # the finder's mask holds the whole arm
    filled = fill_from_skeleton(depth, mask, skeleton, -nearer)
    assert np.isfinite(filled[mask]).all() and np.isnan(filled[~mask & np.isnan(depth)]).all()
    np.testing.assert_array_equal(filled[26:38, 4:14], depth[26:38, 4:14])
    # the wrist sits 0.5 m nearer than the shoulder (the neighbour fill would keep it at 3 m); a limb is drawn in
    # 4 pieces, each at its mid depth, so the ends are 1/8 of a limb's depth change (0.03 m) off
    assert abs(filled[32, 56] - 2.5) < 0.07 and abs(filled[32, 32] - 2.75) < 0.07
    assert abs(fill_to_mask(depth, mask, rings=64)[32, 56] - 3.0) < 1e-6


def test_fill_from_skeleton_without_keypoints_falls_back_to_the_neighbours():
    skeleton, nearer = skeleton_depth(None, None, 16, depth_scale=1.0)
    assert not skeleton.any() and not nearer.any()
    depth = np.full((16, 16), np.nan, np.float32)
    depth[4:8, 4:8] = 2.0
    mask = np.zeros((16, 16), bool)
    mask[2:12, 2:12] = True
    np.testing.assert_array_equal(fill_from_skeleton(depth, mask, skeleton, nearer), fill_to_mask(depth, mask))
    nothing = np.full((16, 16), np.nan, np.float32)  # no pixel with depth to align the skeleton to
    keypoints_2d, keypoints_3d = arm_reaching_forward(16)
    bones, _ = skeleton_depth(keypoints_2d, keypoints_3d, 16, depth_scale=1.0)
    assert np.isnan(fill_from_skeleton(nothing, mask, bones, np.zeros((16, 16), np.float32))).all()
