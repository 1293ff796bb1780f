"""Acceptance test of rgbd_fusion_node: rendered people with known ground truth, over real rclpy / Fast DDS.

This process publishes bundled demo frames (``rgbd_fusion_core/demo_frames``) pasted into a 640x480 camera image
(flat grey around them, intrinsics shifted with them) as rgba8 with the ground-truth person mask in the alpha
channel, plus camera_info. One node process per scenario runs the SHIPPED default model (parameter ``model``
empty):

- ``height_prior``: RGB only; the metric scale comes from the human-height prior.
- ``sensor``: stage-2-only mode; the ground-truth depth plus 2 cm Gaussian noise arrives on ``depth`` (32FC1).

Checked: encodings, stamps, frame ids, the crop intrinsics of the mask box, the point cloud, and metric accuracy
against the ground-truth depth cut and resized as the node cuts the image. Measured values are printed (-s).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

from ros_graph import (  # noqa: E402
    REPO,
    Probe,
    assert_xyzrgb_cloud_layout,
    ros_environment,
    running_node,
)

from rgbd_fusion_core.data.format import read_index  # noqa: E402
from rgbd_fusion_core.geometry.camera import backproject, crop_intrinsics  # noqa: E402
from rgbd_fusion_core.geometry.crop import cut, mask_box, resize_area, resize_nearest  # noqa: E402
from rgbd_fusion_core.io.imageio import read_depth_m, read_mask, read_rgb  # noqa: E402
from rgbd_fusion_ros.conversions import camera_info_to_K, image_to_array, pointcloud_to_arrays  # noqa: E402
from rgbd_fusion_ros.messages import camera_info_message, image_message, make_header  # noqa: E402

DEMO_FRAMES = REPO / "rgbd_fusion_core" / "demo_frames"
SAMPLES = ("s0001_v00", "s0004_v00", "s0000_v00")  # people at about 2.3, 2.7 and 1.5 m
# Top-left corner (x, y) of each 256x256 frame in the camera image; the last frame's crop leaves the image.
OFFSETS = ((24, 112), (200, 40), (384, 224))
CAMERA_HEIGHT, CAMERA_WIDTH = 480, 640
BACKGROUND_GREY = 128
CROP_SIZE = 256
CROP_MARGIN = 0.1
SENSOR_NOISE_M = 0.02
FRAME_ID = "camera_color_optical_frame"
FIRST_STAMP_SEC, STAMP_NANOSEC = 1_700_000_000, 123_456_789
NAMESPACE = "/person"
IMAGE_TOPIC, INFO_TOPIC, DEPTH_TOPIC = "/camera/color/image_raw", "/camera/color/camera_info", "/camera/depth/image"
OUTPUTS = {"depth/image": "Image", "depth/camera_info": "CameraInfo", "points": "PointCloud2"}
START_TIMEOUT_S = 120.0  # torch import and model load share 2 cores with training
ANSWER_TIMEOUT_S = 120.0  # shipped model on a loaded 2-core CPU

# Tolerances: what a trained model must clearly achieve, not one checkpoint's exact quality (the shipped model is
# replaced as training goes on; the measured values are printed).
# Median |z_pred - z_true| with the height prior: the scale assumes a 1.7 m person spanning the silhouette's rows;
# the rendered people are 1.57-1.92 m tall and posed, so the prior alone is off by up to ~12% (~0.3 m at 2.7 m).
HEIGHT_PRIOR_ABS_MEDIAN_M = 0.5
# With sensor depth the scale is the sensor's median over the person: only the network's shape error and the 2 cm
# sensor noise remain.
SENSOR_ABS_MEDIAN_M = 0.1
# Shape (each map minus its median over the common pixels). With sensor depth the mean error must beat a flat
# plane at the true median (about 0.1 m on these frames), i.e. the prediction carries shape, and stay under
# 0.15 m (measured with the shipped model: 0.04-0.05 m). From RGB alone the shipped CPU-trained model does NOT
# beat the flat plane on these pasted frames (measured 0.12-0.19 m against 0.09-0.12 m; see docs/RESULTS.md), so
# there the bound is a regression guard only.
SHAPE_MAE_M = {"sensor": 0.15, "height_prior": 0.25}
SHAPE_MUST_BEAT_FLAT_PLANE = {"sensor": True, "height_prior": False}
# Silhouette IoU of predicted vs true foreground in the crop: the person covers 10-15% of the crop, so calling
# the whole crop foreground scores about 0.12. Measured with the shipped model: 0.85-0.88 with sensor depth,
# 0.46-0.78 from RGB alone (stage 1 at 64x64 misses thin limbs and adds blobs on the flat grey background).
SILHOUETTE_IOU = {"sensor": 0.7, "height_prior": 0.35}


@dataclass(frozen=True)
class Scenario:
    name: str
    use_sensor_depth: bool
    abs_median_tolerance_m: float


SCENARIOS = (
    Scenario("height_prior", use_sensor_depth=False, abs_median_tolerance_m=HEIGHT_PRIOR_ABS_MEDIAN_M),
    Scenario("sensor", use_sensor_depth=True, abs_median_tolerance_m=SENSOR_ABS_MEDIAN_M),
)


@dataclass(frozen=True)
class CameraFrame:
    """One demo sample pasted into the camera image: rgb (H, W, 3) uint8, mask (H, W) bool, depth (H, W) float32
    metres (0 = none), K (3, 3) of the camera image; stamp (sec, nanosec)."""

    sample_id: str
    stamp: tuple[int, int]
    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    K: np.ndarray


@dataclass(frozen=True)
class Answer:
    """The node's messages for one frame."""

    frame: CameraFrame
    depth: object
    info: object
    points: object


@dataclass(frozen=True, eq=False)  # hashed by identity, for ``measured``'s cache
class ScenarioRun:
    scenario: Scenario
    answers: list[Answer]


def camera_frames() -> list[CameraFrame]:
    index = read_index(DEMO_FRAMES)
    samples = {sample.id: sample for sample in index.samples}
    frames = []
    for i, (sample_id, (x0, y0)) in enumerate(zip(SAMPLES, OFFSETS)):
        files = samples[sample_id].files[CROP_SIZE]
        inside = np.s_[y0 : y0 + CROP_SIZE, x0 : x0 + CROP_SIZE]
        rgb = np.full((CAMERA_HEIGHT, CAMERA_WIDTH, 3), BACKGROUND_GREY, np.uint8)
        rgb[inside] = read_rgb(index.root / files["rgb"])
        mask = np.zeros((CAMERA_HEIGHT, CAMERA_WIDTH), bool)
        mask[inside] = read_mask(index.root / files["mask"])
        depth = np.zeros((CAMERA_HEIGHT, CAMERA_WIDTH), np.float32)
        depth[inside] = read_depth_m(index.root / files["depth"], index.depth_unit)
        K = samples[sample_id].K[CROP_SIZE].copy()
        K[0, 2] += x0
        K[1, 2] += y0
        frames.append(CameraFrame(sample_id, (FIRST_STAMP_SEC + i, STAMP_NANOSEC), rgb, mask, depth, K))
    return frames


def publish_frame(probe: Probe, frame: CameraFrame, sensor_depth: np.ndarray | None) -> None:
    """camera_info (+ 32FC1 depth), then the rgba8 image with the mask as alpha, all with the frame's header."""
    types = probe.types
    header = make_header(types, *frame.stamp, FRAME_ID)
    info = camera_info_message(types, header, frame.K, CAMERA_WIDTH, CAMERA_HEIGHT)
    probe.publisher(INFO_TOPIC, types.CameraInfo).publish(info)
    if sensor_depth is not None:
        probe.publisher(DEPTH_TOPIC, types.Image).publish(image_message(types, header, sensor_depth, "32FC1"))
    rgba = np.dstack([frame.rgb, np.where(frame.mask, 255, 0).astype(np.uint8)])
    probe.publisher(IMAGE_TOPIC, types.Image).publish(image_message(types, header, rgba, "rgba8"))


def noisy_sensor_depth(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ground truth (0 = none) + N(0, SENSOR_NOISE_M) -> (H, W) float32 metres, NaN where no depth (REP 118)."""
    noisy = depth + rng.normal(0.0, SENSOR_NOISE_M, depth.shape)
    return np.where(depth > 0, noisy, np.nan).astype(np.float32)


@pytest.fixture(scope="module", params=SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
def run(request, tmp_path_factory) -> ScenarioRun:
    """Start one node for the scenario, send every frame (waiting for each answer), stop the node."""
    scenario: Scenario = request.param
    folder = tmp_path_factory.mktemp(f"ros_accuracy_{scenario.name}")
    env = ros_environment(folder / "ros_log")
    log = folder / "node.log"
    ros_args = ["-r", f"__ns:={NAMESPACE}", "-r", f"__node:=fusion_accuracy_{scenario.name}"]
    ros_args += ["-r", f"image:={IMAGE_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}", "-r", f"depth:={DEPTH_TOPIC}"]
    ros_args += ["-p", f"crop_margin:={CROP_MARGIN}", "-p", f"use_depth:={str(scenario.use_sensor_depth).lower()}"]
    rng = np.random.default_rng(5)
    answers = []
    watched = {f"{NAMESPACE}/{name}": kind for name, kind in OUTPUTS.items()}
    probe_name = f"probe_accuracy_{scenario.name}"
    options = {"image_topic": IMAGE_TOPIC, "camera_info_topic": INFO_TOPIC, "start_timeout_s": START_TIMEOUT_S}
    with running_node(env, ros_args, log, probe_name, watched, **options) as (probe, _, _):
        for frame in camera_frames():
            sensor = noisy_sensor_depth(frame.depth, rng) if scenario.use_sensor_depth else None
            answers.append(send_until_answered(probe, frame, sensor, log))
    return ScenarioRun(scenario, answers)


def send_until_answered(probe: Probe, frame: CameraFrame, sensor, log, attempts: int = 4) -> Answer:
    """Publish the frame (again, same stamp) until the node's depth, camera_info and points stamped like it have
    all arrived: the first messages of a new publisher can be lost while discovery completes (best-effort
    camera QoS). Fails after ANSWER_TIMEOUT_S in all."""
    topics = [f"{NAMESPACE}/{name}" for name in OUTPUTS]
    for _ in range(attempts):
        publish_frame(probe, frame, sensor)
        if probe.spin_until(
            lambda: all(probe.with_stamp(t, *frame.stamp) for t in topics), ANSWER_TIMEOUT_S / attempts
        ):
            return Answer(frame, *(probe.with_stamp(t, *frame.stamp)[0] for t in topics))
    raise AssertionError(f"no answer to {frame.sample_id} within {ANSWER_TIMEOUT_S} s:\n{log.read_text()}")


def crop_box(frame: CameraFrame) -> tuple[int, int, int]:
    return mask_box(frame.mask, CROP_MARGIN)


def test_outputs_carry_the_input_stamp_frame_and_encodings(run):
    assert len(run.answers) == len(SAMPLES)
    for answer in run.answers:
        for msg in (answer.depth, answer.info, answer.points):
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == answer.frame.stamp
            assert msg.header.frame_id == FRAME_ID
        assert (answer.depth.encoding, answer.depth.width, answer.depth.height) == ("32FC1", CROP_SIZE, CROP_SIZE)
        assert answer.depth.step == 4 * CROP_SIZE
        assert (answer.info.width, answer.info.height) == (CROP_SIZE, CROP_SIZE)


def test_depth_camera_info_holds_the_crop_intrinsics_of_the_mask_box(run):
    boxes = [crop_box(answer.frame) for answer in run.answers]
    assert any(y0 + size > CAMERA_HEIGHT for _, y0, size in boxes), f"no crop leaves the image: {boxes}"
    for answer in run.answers:
        expected = crop_intrinsics(answer.frame.K, *crop_box(answer.frame), CROP_SIZE)
        np.testing.assert_allclose(camera_info_to_K(answer.info), expected, rtol=1e-12)
        np.testing.assert_allclose(np.reshape(answer.info.p, (3, 4))[:, :3], expected, rtol=1e-12)


def test_points_are_the_finite_depth_pixels_back_projected_with_crop_colours(run):
    for answer in run.answers:
        cloud = answer.points
        assert_xyzrgb_cloud_layout(cloud)
        depth = image_to_array(answer.depth)
        assert 0 < cloud.width == np.isfinite(depth).sum()
        assert cloud.is_dense
        points, colors = pointcloud_to_arrays(cloud)
        expected_points, pixels = backproject(depth, camera_info_to_K(answer.info))
        np.testing.assert_allclose(points, expected_points, rtol=1e-6, atol=1e-6)
        rgb_crop = resize_area(cut(answer.frame.rgb, crop_box(answer.frame)), CROP_SIZE)
        np.testing.assert_array_equal(colors, rgb_crop[pixels[:, 0], pixels[:, 1]])


@dataclass(frozen=True)
class Accuracy:
    """Per-frame accuracy in the crop: abs_median_m = median |z_pred - z_true| over pixels where both exist;
    shape_mae_m = mean |(z_pred - median) - (z_true - median)| there; flat_mae_m = the same for a flat plane at
    the true median; iou = silhouette IoU of predicted vs true foreground."""

    abs_median_m: float
    shape_mae_m: float
    flat_mae_m: float
    iou: float


def accuracy(answer: Answer) -> Accuracy:
    predicted = image_to_array(answer.depth)
    truth = resize_nearest(cut(answer.frame.depth, crop_box(answer.frame)), CROP_SIZE)
    truth = np.where(truth > 0, truth, np.nan)
    predicted_fg, true_fg = np.isfinite(predicted), np.isfinite(truth)
    both = predicted_fg & true_fg
    assert both.any(), f"{answer.frame.sample_id}: predicted and true person do not overlap at all"
    z_pred, z_true = predicted[both].astype(np.float64), truth[both].astype(np.float64)
    true_relief = z_true - np.median(z_true)
    return Accuracy(
        abs_median_m=float(np.median(np.abs(z_pred - z_true))),
        shape_mae_m=float(np.mean(np.abs((z_pred - np.median(z_pred)) - true_relief))),
        flat_mae_m=float(np.mean(np.abs(true_relief))),
        iou=float(both.sum() / (predicted_fg | true_fg).sum()),
    )


@functools.cache
def measured(run: ScenarioRun) -> list[tuple[str, Accuracy]]:
    """(sample id, accuracy) of every answer of a scenario, printed once."""
    values = [(answer.frame.sample_id, accuracy(answer)) for answer in run.answers]
    for sample_id, value in values:
        print(
            f"\n[{run.scenario.name}] {sample_id}: median |dz| {value.abs_median_m:.3f} m, shape MAE "
            f"{value.shape_mae_m:.3f} m (flat plane {value.flat_mae_m:.3f} m), IoU {value.iou:.3f}"
        )
    return values


def test_absolute_depth_error_is_within_the_scenario_tolerance(run):
    tolerance = run.scenario.abs_median_tolerance_m
    for sample_id, value in measured(run):
        assert value.abs_median_m < tolerance, f"{run.scenario.name} {sample_id}: {value} (tolerance {tolerance} m)"


def test_depth_shape_error(run):
    name = run.scenario.name
    for sample_id, value in measured(run):
        bound = SHAPE_MAE_M[name]
        if SHAPE_MUST_BEAT_FLAT_PLANE[name]:
            bound = min(bound, value.flat_mae_m)
        assert value.shape_mae_m < bound, f"{name} {sample_id}: {value}"


def test_silhouette_matches_the_person(run):
    for sample_id, value in measured(run):
        assert value.iou > SILHOUETTE_IOU[run.scenario.name], f"{run.scenario.name} {sample_id}: {value}"
