"""rgbd_fusion_node with the real person finder: a rendered person in a camera frame is found and published, a
frame with nobody publishes nothing and is counted in /diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("mediapipe", reason="the person finder needs mediapipe==0.10.21 (CPython 3.9-3.12 wheels)")

from ros_graph import Probe, fresh_diagnostics, ros_environment, running_node  # noqa: E402

from rgbd_fusion_core.apps.scenes import FRAME_SHAPE, GREY, bundled_render, paste_people  # noqa: E402
from rgbd_fusion_ros.messages import camera_info_message, image_message, make_header  # noqa: E402

HEIGHT, WIDTH = FRAME_SHAPE
ANSWER_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def graph(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("ros_people")
    env = ros_environment(folder / "ros_log")
    log = folder / "node.log"
    ros_args = ["-r", "__node:=fusion_people", "-p", f"model:={tiny_model_dir}", "-p", "person_source:=auto"]
    ros_args += ["-p", "steps1:=1", "-p", "steps2:=1", "-p", "diagnostics_period_s:=0.5"]
    watched = {"/depth/image": "Image", "/points": "PointCloud2", "/diagnostics": "DiagnosticArray"}
    with running_node(env, ros_args, log, "probe_people", watched, active_text="active") as running:
        yield running


def send(probe: Probe, sec: int, rgb: np.ndarray, K: np.ndarray) -> None:
    header = make_header(probe.types, sec, 0, "cam")
    probe.publisher("/camera_info", probe.types.CameraInfo).publish(
        camera_info_message(probe.types, header, K, WIDTH, HEIGHT)
    )
    probe.publisher("/image", probe.types.Image).publish(image_message(probe.types, header, rgb, "rgb8"))


def test_a_rendered_person_is_found_and_published_and_nobody_is_counted(graph):
    probe, _, _ = graph
    rgb, _, K, _ = paste_people([bundled_render(0)], [(192, 112)])
    for attempt in range(6):  # the first frames can be lost while discovery completes (best-effort QoS)
        send(probe, 100 + attempt, rgb, K)
        if probe.spin_until(lambda: probe.received["/depth/image"] and probe.received["/points"], ANSWER_TIMEOUT_S / 6):
            break
    assert probe.received["/depth/image"] and probe.received["/points"]
    before = fresh_diagnostics(probe)
    assert int(before["people_found"]) >= 1
    empty = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    for sec in range(200, 203):
        send(probe, sec, empty, K)
        probe.spin_for(1.0)
    after = fresh_diagnostics(probe)
    assert int(after.get("frames_with_nobody", 0)) >= 1
    for sec in range(200, 203):  # nothing published for nobody (a late answer to a retried person frame is fine)
        assert not probe.with_stamp("/depth/image", sec, 0) and not probe.with_stamp("/points", sec, 0)
