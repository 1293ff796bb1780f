"""rgbd_fusion_node with mask and sensor-depth inputs (stage-2-only mode), and its start-up failures.

One node process (use_mask, use_depth) serves the input tests; the start-up tests run short-lived processes.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

from ros_graph import (  # noqa: E402
    PERSON_DEPTH_M,
    REPO,
    Probe,
    lifecycle_state,
    person_frame_messages,
    pinhole,
    ros_environment,
    running_node,
    start_node,
    stop_node,
    wait_for_log,
)

from rgbd_fusion_ros.conversions import image_to_array  # noqa: E402
from rgbd_fusion_ros.messages import camera_info_message, make_header  # noqa: E402

NODE = "/fusion_with_depth"
HEIGHT, WIDTH = 240, 320
K_INPUT = pinhole(280.0, 280.0, 160.0, 120.0)
DEPTH_WINDOW_M = 1.0  # the tiny preset's depth space: z_ref +- 0.5 m (+ the threshold band)
ANSWER_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ros_node_inputs")
    return folder, ros_environment(folder / "ros_log")


@pytest.fixture(scope="module")
def graph(environment, tiny_model_dir):
    folder, env = environment
    log = folder / "node.log"
    parameters = {
        "model": str(tiny_model_dir),
        "steps2": 1,
        "use_mask": "true",
        "use_depth": "true",
        "reference_depth": "sensor",
    }
    ros_args = ["-r", "__node:=fusion_with_depth"]
    for name, value in parameters.items():
        ros_args += ["-p", f"{name}:={value}"]
    watched = {"/depth/image": "Image", "/points": "PointCloud2"}
    active = "active: matching /image, /camera_info, /mask, /depth"
    with running_node(env, ros_args, log, "probe_inputs", watched, active_text=active) as running:
        yield running


def send_frame(
    probe: Probe, sec: int, mask=None, depth=None, depth_encoding="16UC1", encoding="rgb8", K=K_INPUT
) -> None:
    """image + camera_info + mask + depth stamped (sec, 0); defaults: a person at 2 m in front of a wall at 4 m.

    encoding: the image's claimed encoding (the pixels stay rgb8); K: the camera_info intrinsics."""
    types = probe.types
    messages = person_frame_messages(
        types, sec, K, HEIGHT, WIDTH, mask=mask, depth=depth, depth_encoding=depth_encoding, encoding=encoding
    )
    for topic, msg in messages.items():
        kind = types.CameraInfo if topic == "/camera_info" else types.Image
        probe.publisher(topic, kind).publish(msg)


def send_until_answered(probe: Probe, sec: int, attempts: int = 6, **frame) -> np.ndarray:
    """Send a frame again until it is answered: the first messages after start-up can be lost while discovery
    completes (best-effort camera QoS)."""
    for _ in range(attempts):
        send_frame(probe, sec, **frame)
        if probe.spin_until(lambda: probe.with_stamp("/depth/image", sec, 0), ANSWER_TIMEOUT_S / attempts):
            return image_to_array(probe.with_stamp("/depth/image", sec, 0)[0])
    raise AssertionError(f"no depth for stamp {sec} after {attempts} sends")


def wait_depth(probe: Probe, sec: int) -> np.ndarray:
    answered = probe.spin_until(lambda: probe.with_stamp("/depth/image", sec, 0), ANSWER_TIMEOUT_S)
    assert answered, f"no depth for stamp {sec}"
    return image_to_array(probe.with_stamp("/depth/image", sec, 0)[0])


@pytest.mark.parametrize("depth_encoding", ["16UC1", "32FC1"])
def test_sensor_depth_sets_the_metric_scale(graph, depth_encoding):
    probe, _, _ = graph
    sec = 10 if depth_encoding == "16UC1" else 11
    depth = send_until_answered(probe, sec, depth_encoding=depth_encoding)
    person = depth[np.isfinite(depth)]
    assert person.size > 0
    # z_ref is the sensor's median person depth (2 m); the network only places depth inside its window around it
    assert np.abs(person - PERSON_DEPTH_M).max() <= DEPTH_WINDOW_M / 2 + 0.05


@pytest.mark.parametrize(
    "problem, warning",
    [
        ("mask_size", "mask: mask is 160x120 but the image is 320x240"),
        ("nan_depth", "depth: depth image (32FC1) has no valid pixel"),
    ],
)
def test_bad_mask_or_depth_is_skipped_and_the_next_frame_answered(graph, problem, warning):
    probe, process, log = graph
    sec = {"mask_size": 20, "nan_depth": 21}[problem]
    if problem == "mask_size":
        send_frame(probe, sec, mask=np.full((120, 160), 255, np.uint8))
    else:
        send_frame(probe, sec, depth=np.full((HEIGHT, WIDTH), np.nan, np.float32), depth_encoding="32FC1")
    wait_for_log(log, warning, ANSWER_TIMEOUT_S, process)
    send_frame(probe, sec + 100)
    wait_depth(probe, sec + 100)
    assert not probe.with_stamp("/depth/image", sec, 0)
    assert process.poll() is None


@pytest.mark.parametrize(
    "arguments, reason",
    [
        (["-p", "steps1:=0"], "steps1"),
        (["-p", "backend:=caffe"], "parameter 'backend': 'caffe' is not one of auto, torch, onnxruntime, tensorrt"),
        (["-p", "publish_uncertainty:=true"], "'uncertainty_samples' is below 2"),
        (["-p", "max_rate_hz:=fast"], "max_rate_hz"),
    ],
)
def test_invalid_parameters_stop_the_node_at_start_up(environment, arguments, reason):
    folder, env = environment
    command = [sys.executable, "-m", "rgbd_fusion_ros.node", "--ros-args", *arguments]
    finished = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert "invalid parameters" in finished.stderr and reason in finished.stderr, finished.stderr


@pytest.mark.parametrize(
    "arguments, code, text",
    [
        (["--ros-args", "--help"], 0, "usage: rgbd_fusion_node [--ros-args"),
        (["--help"], 0, "  steps2: "),
        (["--ros-args", "--no-such-flag"], 2, "UnknownROSArgsError: ['--no-such-flag']"),
    ],
)
def test_help_and_unknown_ros_arguments_end_without_a_traceback(environment, arguments, code, text):
    """``rgbd_fusion_node --ros-args --help`` used to end in rclpy's UnknownROSArgsError traceback."""
    folder, env = environment
    command = [sys.executable, "-m", "rgbd_fusion_ros.node", *arguments]
    finished = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    output = finished.stdout + finished.stderr
    assert finished.returncode == code and text in output and "Traceback" not in output, output


def test_a_model_that_fails_to_load_fails_configure(environment):
    folder, env = environment
    log = folder / "bad_model.log"
    process = start_node(env, ["-r", "__node:=fusion_bad_model", "-p", f"model:={folder / 'no_such_model'}"], log)
    probe = Probe("probe_bad_model")
    try:
        text = wait_for_log(log, "autostart failed", 60, process)
        assert f"configure failed: could not load {folder / 'no_such_model'}" in text
        assert "model folder not found" in text
        assert lifecycle_state(probe, "/fusion_bad_model") == "unconfigured"
        assert process.poll() is None
    finally:
        probe.close()
        stop_node(process)


def send_until_logged(probe: Probe, process, log, sec: int, text: str, attempts: int = 6, **frame) -> str:
    """Send a frame again until ``text`` is in the node's log (early messages can be lost during discovery)."""
    for _ in range(attempts):
        send_frame(probe, sec, **frame)
        try:
            return wait_for_log(log, text, ANSWER_TIMEOUT_S / attempts, process)
        except AssertionError:
            continue
    return wait_for_log(log, text, 0, process)


def with_entry(entry, value):
    K = K_INPUT.copy()
    K[entry] = value
    return K


@pytest.mark.parametrize(
    "problem, frame, warning",
    [
        ("huge_fx", {"K": with_entry((0, 0), 1e30)}, "camera_info: camera_info K: fx=1e+30 px is implausible"),
        ("nan_cx", {"K": with_entry((0, 2), np.nan)}, "camera_info: camera_info K: cx is nan"),
        (
            "depth_65535mm",
            {"depth": np.full((HEIGHT, WIDTH), 65535, np.uint16)},
            "depth: depth image (16UC1) has no valid pixel (all zero, NaN, infinite, 65535 mm or outside 0.05-20 m)",
        ),
        (
            "depth_1e-30m",
            {"depth": np.full((HEIGHT, WIDTH), 1e-30, np.float32), "depth_encoding": "32FC1"},
            "depth: depth image (32FC1) has no valid pixel",
        ),
    ],
)
def test_implausible_values_are_refused_naming_the_field(graph, problem, frame, warning):
    """fx = 1e30 used to give depths of 1e28 m, a 65535 mm depth 65.5 m, a NaN cx a message about fx and fy."""
    probe, process, log = graph
    sec = {"huge_fx": 40, "nan_cx": 41, "depth_65535mm": 42, "depth_1e-30m": 43}[problem]
    send_until_logged(probe, process, log, sec, warning, **frame)
    send_until_answered(probe, sec + 100)
    assert not probe.with_stamp("/depth/image", sec, 0)


def test_strings_from_messages_are_cut_in_the_log(graph):
    """A 10,000-character encoding was logged verbatim (130 KB of a 202 KB log)."""
    probe, process, log = graph
    size_before = log.stat().st_size
    text = send_until_logged(probe, process, log, 50, "image: unsupported image encoding 'yyyy", encoding="y" * 10_000)
    assert "(10000 characters)" in text and "y" * 100 not in text
    assert log.stat().st_size - size_before < 2_000


def test_bad_frames_never_displace_a_good_frame_waiting_for_the_worker(graph):
    """A good frame waits in the worker's single slot while another is inferred; malformed sets arriving
    meanwhile are refused by a cheap check on arrival instead of taking its place (they took it before)."""
    probe, process, log = graph
    waiting = []
    for round_ in range(6):
        busy, good = 300 + 10 * round_, 301 + 10 * round_
        send_frame(probe, busy)  # taken by the worker at once
        send_frame(probe, good)  # waits in the slot while ``busy`` is inferred
        send_frame(probe, good + 1, encoding="yuv422")
        send_frame(probe, good + 2, depth=np.full((HEIGHT, WIDTH), 65535, np.uint16))  # no valid depth
        waiting.append(good)
        probe.spin_until(lambda good=good: probe.with_stamp("/depth/image", good, 0), ANSWER_TIMEOUT_S / 3)
    answered = [sec for sec in waiting if probe.with_stamp("/depth/image", sec, 0)]
    assert answered == waiting, f"good frames displaced by bad ones: {sorted(set(waiting) - set(answered))}"
    assert "skipping frame: image: unsupported image encoding 'yuv422'" in log.read_text()
    assert "skipping frame: depth: depth image (16UC1) has no valid pixel" in log.read_text()
    assert process.poll() is None


def test_camera_info_announcing_images_too_large_for_the_transport_is_warned_about(graph):
    """An 8000x6000 rgb8 image (144 MB) never reaches the node (the DDS profile drops it); its camera_info does."""
    probe, process, log = graph
    header = make_header(probe.types, 70, 0, "cam")
    message = camera_info_message(probe.types, header, np.array(K_INPUT) * [[12.5], [12.5], [1]], 8000, 6000)
    publisher = probe.publisher("/camera_info", probe.types.CameraInfo)
    for _ in range(6):  # the first messages after start-up can be lost while discovery completes
        publisher.publish(message)
        probe.spin_for(0.5)
        if "announces 8000x6000 images: 144.0 MB as rgb8" in log.read_text():
            break
    text = wait_for_log(log, "announces 8000x6000 images: 144.0 MB as rgb8", 5, process)
    assert "dropped by the transport" in text and "fastdds_large_messages.xml" in text
