"""The node's stamp matching, rate limit and cleanup, in-process: a fresh node (and matcher) for every test, so
no test depends on what an earlier one left behind (a live parameter change, a queued message)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_graph import person_like_image, pinhole, ros_environment  # noqa: E402

from rgbd_fusion_ros.messages import camera_info_message, image_message, make_header, rclpy_types  # noqa: E402
from rgbd_fusion_ros.sync import StampSynchronizer  # noqa: E402

MS = 1_000_000
TOLERANCE_S = 0.005
HEIGHT, WIDTH = 48, 64


@pytest.fixture
def make_node(tmp_path, tiny_model_dir):
    """make_node(**parameters) -> an active RgbdFusionNode in this process (its own rclpy context)."""
    from rgbd_fusion_ros.node import RgbdFusionNode

    ros_environment(tmp_path / "ros_log")
    context = Context()
    rclpy.init(context=context)
    nodes = []

    def make(**parameters):
        values = {"model": str(tiny_model_dir), "steps1": 1, "steps2": 1, "sync_tolerance_s": TOLERANCE_S}
        values |= {"crop_mode": "center", "autostart": False} | parameters
        node = RgbdFusionNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        nodes.append(node)
        assert node.autostart(), "the node did not configure and activate"
        return node

    try:
        yield make
    finally:
        for node in nodes:
            node.close()
            node.destroy_node()
        context.try_shutdown()


def frame_messages(sec: int, image_offset_ns: int = 0, info_offset_ns: int = 0):
    types = rclpy_types()
    image = image_message(
        types, make_header(types, sec, image_offset_ns, "cam"), person_like_image(HEIGHT, WIDTH)[0], "rgb8"
    )
    K = pinhole(60.0, 62.0, 31.5, 23.5)
    info = camera_info_message(types, make_header(types, sec, info_offset_ns, "cam"), K, WIDTH, HEIGHT)
    return image, info


def matched_count(node) -> int:
    """Frames matched by stamp (no output has a subscriber here, so every match is counted as skipped)."""
    return int(node._stats.summary().get("skipped_no_subscribers", 0))


@pytest.mark.parametrize("info_first", [True, False])
@pytest.mark.parametrize(
    "offset_ms, matches", [(0.0, True), (4.0, True), (-4.0, True), (5.0, True), (5.5, False), (-6.0, False)]
)
def test_node_matches_within_its_tolerance_only(make_node, offset_ms, matches, info_first):
    node = make_node()
    offset_ns = round(offset_ms * MS)
    image, info = frame_messages(100, image_offset_ns=500 * MS, info_offset_ns=500 * MS + offset_ns)
    for stream, msg in [("camera_info", info), ("image", image)][:: 1 if info_first else -1]:
        node._on_message(stream, msg)
    assert matched_count(node) == int(matches)


def test_live_tolerance_change_applies_to_the_next_frame(make_node):
    node = make_node()
    result = node.set_parameters([Parameter("sync_tolerance_s", value=0.002)])
    assert result[0].successful
    image, info = frame_messages(7, image_offset_ns=0, info_offset_ns=3 * MS)
    node._on_message("camera_info", info)
    node._on_message("image", image)
    assert matched_count(node) == 0
    image, info = frame_messages(8, image_offset_ns=0, info_offset_ns=1 * MS)
    node._on_message("camera_info", info)
    node._on_message("image", image)
    assert matched_count(node) == 1


def test_rate_limit_and_cleanup(make_node):
    """max_rate_hz = 0.5: of frames arriving together only the first is accepted; deactivate stops the intake and
    cleanup releases the outputs and the model."""
    node = make_node(max_rate_hz=0.5)
    subscriber_node = rclpy.create_node("rate_probe", context=node.context)
    received = []
    try:
        subscriber_node.create_subscription(
            rclpy_types().Image, node.get_namespace().rstrip("/") + "/depth/image", received.append, 10
        )
        publisher = node._outputs["depth/image"]
        deadline = time.monotonic() + 10
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert publisher.get_subscription_count() == 1
        for sec in (1, 2, 3):
            image, info = frame_messages(sec)
            node._on_message("camera_info", info)
            node._on_message("image", image)
        assert node._stats.summary().get("skipped_rate_limit", 0) == 2
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS  # waits for the worker's frame
        image, info = frame_messages(10)
        node._on_message("camera_info", info)
        node._on_message("image", image)
        summary = node._stats.summary()
        assert summary["received_image"] == 4  # counted, but an inactive node matches nothing
        assert summary.get("skipped_rate_limit", 0) == 2 and summary.get("skipped_no_subscribers", 0) == 0
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node._outputs == {} and node._pipeline is None  # cleanup releases the publishers and the model
    finally:
        subscriber_node.destroy_node()


@pytest.mark.parametrize("partner_first", [True, False])
@pytest.mark.parametrize("offset_ns, matches", [(0, True), (3 * MS, True), (5 * MS, True), (5 * MS + 1, False)])
def test_synchronizer_tolerance_boundary_in_either_order(offset_ns, matches, partner_first):
    sync = StampSynchronizer(["image", "camera_info"], tolerance_ns=5 * MS, queue_size=4)
    arrivals = [("camera_info", 1000 * MS + offset_ns, "info"), ("image", 1000 * MS, "image")]
    if not partner_first:
        arrivals.reverse()
    results = [sync.add(*arrival) for arrival in arrivals]
    assert results[0] is None
    assert results[1] == ({"image": "image", "camera_info": "info"} if matches else None)
