"""The finder's skeleton as a depth source (filling the mask, blending the coarse depth), and the neighbour fill."""

from __future__ import annotations

import numpy as np

from rgbd_fusion_core.geometry.mask_fill import fill_to_mask
from rgbd_fusion_core.geometry.pose_depth import blend_coarse_depth, fill_from_field, limb_field
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
    """The limb segments of one arm in a (size, size) crop: shoulder at the left, wrist at the right, the wrist
    0.5 m nearer the camera than the shoulder. Returns (skeleton (size, size) bool, depth (size, size) metres,
    larger = farther)."""
    keypoints_2d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    keypoints_3d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for index, x, z in ((LEFT_SHOULDER, size / 8, 0.5), (LEFT_ELBOW, size / 2, 0.25), (LEFT_WRIST, size * 7 / 8, 0.0)):
        keypoints_2d[index] = (x, size // 2, 1.0)
        keypoints_3d[index, 2] = z
    skeleton, nearer = skeleton_depth(keypoints_2d, keypoints_3d, size, depth_scale=1.0)
    return skeleton, -nearer


def test_an_unpredicted_arm_is_filled_at_the_depth_of_its_bones():
    skeleton, limb_depth = arm_reaching_forward()
    assert skeleton[32, 8:57].all() and skeleton.sum() < 64 * 4
    depth = np.full((64, 64), np.nan, np.float32)
    depth[26:38, 4:14] = 3.0  # the network saw only the shoulder, at 3 m
    mask = np.zeros((64, 64), bool)
    mask[28:37, 4:60] = True  # the finder's mask holds the whole arm
    filled = fill_from_field(depth, mask, limb_field(depth, skeleton, limb_depth))
    assert np.isfinite(filled[mask]).all() and np.isnan(filled[~mask & np.isnan(depth)]).all()
    np.testing.assert_array_equal(filled[26:38, 4:14], depth[26:38, 4:14])
    # the wrist sits 0.5 m nearer than the shoulder (the neighbour fill would keep it at 3 m); a limb is drawn in
    # 4 pieces, each at its mid depth, so the ends are 1/8 of a limb's depth change (0.03 m) off
    assert abs(filled[32, 56] - 2.5) < 0.07 and abs(filled[32, 32] - 2.75) < 0.07
    assert abs(fill_to_mask(depth, mask, rings=64)[32, 56] - 3.0) < 1e-6


def test_no_field_without_a_skeleton_or_without_predicted_depth():
    skeleton, limb_depth = arm_reaching_forward(16)
    depth = np.full((16, 16), 2.0, np.float32)
    assert limb_field(depth, np.zeros((16, 16), bool), limb_depth) is None
    assert limb_field(np.full((16, 16), np.nan, np.float32), skeleton, limb_depth) is None
    field = limb_field(depth, skeleton, limb_depth)
    assert np.isfinite(field).all() and abs(np.median(field) - 2.0) < 1e-6  # aligned to the predicted depth


def test_blending_takes_the_coarse_depth_from_the_field_and_keeps_the_fine_detail():
    rows, cols = np.mgrid[0:128, 0:128]
    detail = 0.01 * np.sin(cols * 1.3)  # a fine surface texture, period about 5 px
    depth = (2.0 + detail).astype(np.float32)  # the network: flat at 2 m
    field = (2.0 + 0.004 * (cols - 64)).astype(np.float32)  # the skeleton: tilted, 0.5 m across the crop
    depth[:, :8] = np.nan  # no person there: stays empty
    blended = blend_coarse_depth(depth, field, 0.5)
    assert np.isnan(blended[:, :8]).all()
    inner = (slice(40, 88), slice(40, 88))  # away from the person's edge, where the smoothing is one-sided
    expected = 2.0 + 0.5 * (field - 2.0) + detail
    np.testing.assert_allclose(blended[inner], expected[inner], atol=2e-3)
    np.testing.assert_array_equal(blend_coarse_depth(depth, field, 0.0), depth)
