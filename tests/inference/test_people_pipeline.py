"""The Pipeline on people: the real person finder and the shipped model on rendered people pasted into camera
frames (ground truth known), several people, nobody, mask-first output and the flying-pixel filter."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from rgbd_fusion_core.apps.scenes import FRAME_SHAPE, GREY, Render, bundled_render, paste_people
from rgbd_fusion_core.geometry.depth_edges import behind_share, remove_flying_pixels
from rgbd_fusion_core.geometry.pose_depth import fill_from_field
from rgbd_fusion_core.inference.pipeline import Pipeline
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig
from rgbd_fusion_core.inference.targets import Target
from rgbd_fusion_core.people.person import LEFT_ELBOW, LEFT_SHOULDER, LEFT_WRIST, NUM_KEYPOINTS


def paste(renders: list[Render], xs: list[int], y: int = 112):
    """Renders side by side in one grey 480x640 camera frame: (rgb, true depth, K)."""
    return paste_people(renders, [(x, y) for x in xs])[:3]


@pytest.fixture(scope="module")
def pipeline():
    pytest.importorskip("mediapipe", reason="the person finder needs mediapipe==0.10.21 (CPython 3.9-3.12 wheels)")
    return Pipeline.from_pretrained(device="cpu", config=PipelineConfig(full_frame=True))


def test_one_rendered_person_is_found_limited_to_them_and_scaled_from_the_pose(pipeline):
    rgb, depth, K = paste([bundled_render(0)], [192])
    result = pipeline(Frame(rgb, K))
    truth = depth > 0
    predicted = np.isfinite(result.depth_full)
    assert result.people_found == 1 and result.person_source == "finder" and result.z_ref_source == "pose"
    assert (predicted & truth).sum() / (predicted | truth).sum() > 0.8
    assert (predicted & truth).sum() / predicted.sum() > 0.9  # precision: no background becomes person
    near = cv2.dilate(truth.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert (predicted & ~near).sum() == 0  # nothing beyond the finder mask's edge allowance
    true_z = float(np.median(depth[truth]))
    assert abs(result.z_ref - true_z) / true_z < 0.2, (result.z_ref, true_z)
    # the pose's z_ref is the keypoints' depth moved pose_surface_offset_m nearer, and the points follow it
    at_keypoints = pipeline.with_config(dataclasses.replace(pipeline.config, pose_surface_offset_m=0.0))(Frame(rgb, K))
    assert at_keypoints.z_ref - result.z_ref == pytest.approx(pipeline.config.pose_surface_offset_m, abs=1e-9)
    assert np.nanmedian(at_keypoints.depth_full) > np.nanmedian(result.depth_full) + 0.1


def test_two_people_get_two_crops_and_both_are_in_the_cloud(pipeline):
    rgb, depth, K = paste([bundled_render(1), bundled_render(2)], [40, 344])
    result = pipeline(Frame(rgb, K))
    assert result.people_found == 2 and len(result.others) == 1
    boxes = [result.crop_box, result.others[0].crop_box]
    assert sorted(box[0] + box[2] / 2 < 320 for box in boxes) == [False, True]  # one crop per side
    u = K[0, 0] * result.points[:, 0] / result.points[:, 2] + K[0, 2]
    assert (u < 300).sum() > 500 and (u > 340).sum() > 500
    assert len(result.points) == len(result.colors) == sum(np.isfinite(p.depth).sum() for p in [result, *result.others])
    left, right = depth[:, :320] > 0, depth[:, 320:] > 0
    assert np.isfinite(result.depth_full[:, :320])[left].mean() > 0.7
    assert np.isfinite(result.depth_full[:, 320:])[right].mean() > 0.7


def test_raising_max_people_live_applies_to_the_pipelines_own_tracking_finder():
    pytest.importorskip("mediapipe", reason="the person finder needs mediapipe==0.10.21 (CPython 3.9-3.12 wheels)")
    config = PipelineConfig(max_people=1)
    video = Pipeline.from_pretrained(device="cpu", backend="onnxruntime", config=config, video=True)
    frame = Frame(*paste([bundled_render(1), bundled_render(2)], [40, 344])[::2])
    try:
        assert video(frame).people_found == 1
        raised = video.with_config(dataclasses.replace(config, max_people=2))
        found = [raised(frame).people_found for _ in range(6)]  # a newcomer search runs every 5th frame
        assert found[-1] == 2 and video.finder.max_people == 2, found
    finally:
        video.close()


def test_a_frame_with_nobody_gives_an_empty_result(pipeline):
    for rgb in (np.full((*FRAME_SHAPE, 3), GREY, np.uint8), np.zeros((40, 40, 3), np.uint8)):
        K = np.array([[500.0, 0, rgb.shape[1] / 2], [0, 500.0, rgb.shape[0] / 2], [0, 0, 1]])
        result = pipeline(Frame(rgb, K))
        assert result.people_found == 0 and result.points.shape == (0, 3) and result.nfe == 0
        assert np.isnan(result.depth).all() and np.isnan(result.depth_full).all()


def test_a_person_cut_by_the_frame_edge_is_still_processed(pipeline):
    rgb, depth, K = paste([bundled_render(3)], [192], y=112)
    result = pipeline(Frame(rgb[:250].copy(), K))  # the frame ends at the person's hips or above
    assert result.people_found == 1 and len(result.points) > 500


def test_a_given_mask_limits_the_output(pipeline):
    rgb, depth, K = paste([bundled_render(4)], [192])
    half = depth > 0
    half[:, 320:] = False  # the user's mask covers only the left half of the person
    result = pipeline(Frame(rgb, K, mask=half))
    predicted = np.isfinite(result.depth_full)
    assert result.person_source == "mask" and predicted.sum() > 500
    margin = pipeline.config.mask_margin_px * result.crop_box[2] / 256 + 2
    assert predicted[:, int(320 + margin) :].sum() == 0


def test_fill_mask_follows_the_skeleton_of_an_arm_the_network_missed(pipeline):
    """The Pipeline's skeleton depth field: keypoints moved into the crop, nearer keypoints filled nearer."""
    keypoints_2d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    keypoints_3d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for index, x, z in ((LEFT_SHOULDER, 116, 0.4), (LEFT_ELBOW, 164, 0.2), (LEFT_WRIST, 212, 0.0)):
        keypoints_2d[index] = (x, 164, 1.0)  # frame pixels; the crop below starts at (100, 100), 2x smaller
        keypoints_3d[index, 2] = z  # the wrist 0.4 m nearer than the shoulder
    target = Target(keypoints_2d=keypoints_2d, keypoints_3d=keypoints_3d, source="finder")
    depth = np.full((64, 64), np.nan, np.float32)
    depth[26:38, 4:14] = 3.0  # the network predicted only the shoulder
    arm = np.zeros((64, 64), bool)
    arm[28:37, 4:60] = True
    filled = fill_from_field(depth, arm, pipeline._limb_field(depth, target, (100, 100, 128)))
    assert np.isfinite(filled[arm]).all()
    assert filled[32, 56] < filled[32, 32] < filled[32, 10] and abs(filled[32, 56] - 2.6) < 0.07


def test_the_skeleton_blends_into_predicted_depth_but_not_into_sensor_depth(pipeline):
    rgb, depth, K = paste([bundled_render(0)], [192])
    weights = [dataclasses.replace(pipeline.config, pose_depth_weight=w) for w in (0.0, 1.0)]
    for sensor, changes in ((None, True), (depth.astype(np.float32), False)):
        plain, blended = (pipeline.with_config(c)(Frame(rgb, K, sensor_depth=sensor)) for c in weights)
        assert plain.people_found == blended.people_found == 1 and plain.z_ref_source == blended.z_ref_source
        both = np.isfinite(plain.depth) & np.isfinite(blended.depth)
        assert both.sum() > 500
        assert (np.abs(plain.depth[both] - blended.depth[both]).max() > 0.01) == changes


def test_flying_pixel_filter_peels_a_trailing_ramp_but_keeps_interior_steps():
    depth = np.full((40, 40), np.nan, np.float32)
    depth[10:30, 10:30] = 2.0
    depth[15:25, 15:20] = 1.6  # an arm in front of the torso: an interior step, not a silhouette edge
    for ring, column in enumerate(range(30, 36)):  # a wedge trailing 0.12 m further per pixel
        depth[10:30, column] = 2.0 + 0.12 * (ring + 1)
    cleaned = remove_flying_pixels(depth, max_step_m=0.1)
    assert np.isnan(cleaned[:, 31:]).all()  # all but the ramp's first column (0.12 m behind) is peeled
    np.testing.assert_array_equal(cleaned[10:30, 10:30], depth[10:30, 10:30])
    assert behind_share(depth, 0.4) > 0.05 and behind_share(cleaned, 0.4) == 0.0
    np.testing.assert_array_equal(remove_flying_pixels(depth, 0.0)[np.isfinite(depth)], depth[np.isfinite(depth)])


def test_fill_mask_makes_the_given_mask_the_silhouette(pipeline):
    rgb, depth, K = paste([bundled_render(4)], [192])
    mask = depth > 0
    plain = pipeline.with_config(dataclasses.replace(pipeline.config, fill_mask=False))(Frame(rgb, K, mask=mask))
    filled = pipeline(Frame(rgb, K, mask=mask))  # fill_mask is on by default
    covered = [np.isfinite(r.depth_full)[mask].mean() for r in (plain, filled)]
    assert covered[1] > 0.97 and covered[1] > covered[0], covered
    inside = np.isfinite(filled.depth_full)
    person = filled.depth_full[inside]
    assert person.max() < np.nanmax(plain.depth_full) + 0.05  # filled pixels continue the body, nothing behind it
