"""Helpers for tests that talk to a real ``rgbd_fusion_node`` process over real rclpy / Fast DDS.

Every test module gets its own ROS_DOMAIN_ID (from its pid), a ROS_LOG_DIR under pytest's tmp folder and the
shipped large-message Fast DDS profile. The test process itself is a ROS participant (``Probe``): it publishes
camera frames and records what the node publishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_messages.xml"


def ros_environment(log_dir: Path) -> dict[str, str]:
    """Environment for this test process and the node processes it starts (sets it on os.environ too, so the
    in-process participant uses the same domain and Fast DDS profile)."""
    settings = {
        "ROS_DOMAIN_ID": str(10 + os.getpid() % 200),
        "ROS_LOG_DIR": str(log_dir),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    os.environ.update({k: v for k, v in settings.items() if k != "PYTHONPATH"})
    return {**os.environ, **settings}


# The node tests send drawn silhouettes (no real person for the finder): they test the plumbing on the centred
# crop unless a test sets person_source itself.
PLUMBING_ARGS = ["-p", "person_source:=none"]


def start_node(env: dict[str, str], ros_args: list[str], log_file: Path) -> subprocess.Popen:
    """``python -m rgbd_fusion_ros.node --ros-args ...`` with stdout+stderr into ``log_file``."""
    chosen = any("person_source" in arg for arg in ros_args)
    command = [sys.executable, "-m", "rgbd_fusion_ros.node", "--ros-args", *([] if chosen else PLUMBING_ARGS)]
    command += ros_args
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log_file.open("w"), stderr=subprocess.STDOUT)


def stop_node(process: subprocess.Popen, timeout_s: float = 15.0) -> int:
    """SIGINT (as Ctrl-C), then kill if it does not end; returns the exit code."""
    if process.poll() is None:
        process.send_signal(subprocess.signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for_log(log_file: Path, text: str, timeout_s: float, process: subprocess.Popen | None = None) -> str:
    """Wait until ``text`` appears in the log; returns the log. Fails early when the process ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = log_file.read_text()
        if text in log:
            return log
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log_file} within {timeout_s} s:\n{log_file.read_text()}")


def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def person_like_image(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic (H, W, 3) uint8 image with a person-shaped blob (head + body) and its (H, W) bool mask."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width]
    cx = width / 2
    head = (u - cx) ** 2 + (v - 0.2 * height) ** 2 < (0.07 * height) ** 2
    body = (np.abs(u - cx) < 0.12 * width) & (v > 0.27 * height) & (v < 0.9 * height)
    mask = head | body
    rgb = rng.integers(20, 60, (height, width, 3), dtype=np.uint8)
    rgb[mask] = (200, 150, 120)
    return rgb, mask


PERSON_DEPTH_M, BACKGROUND_DEPTH_M = 2.0, 4.0  # the person-like frame's depth: a person in front of a wall


def person_depth_m(height: int, width: int) -> np.ndarray:
    """(H, W) float32 metres of ``person_like_image``'s scene: the person at 2 m, the wall behind at 4 m."""
    _, person = person_like_image(height, width)
    return np.where(person, PERSON_DEPTH_M, BACKGROUND_DEPTH_M).astype(np.float32)


def person_frame_messages(
    types,
    sec: int,
    K,
    height: int,
    width: int,
    *,
    mask_and_depth: bool = True,
    mask=None,
    depth=None,
    depth_encoding: str = "16UC1",
    encoding: str = "rgb8",
) -> dict:
    """{topic: message} of one input frame stamped (sec, 0), each message with a header of its own: camera_info
    (K), and, when ``mask_and_depth``, the mask and depth (defaults: the person's mask, ``person_depth_m`` as
    ``depth_encoding`` 16UC1 millimetres or 32FC1 metres), then the person-like image (claimed ``encoding``, the
    pixels stay rgb8)."""
    from rgbd_fusion_ros.messages import camera_info_message, image_message, make_header

    rgb, person = person_like_image(height, width)
    messages = {"/camera_info": camera_info_message(types, make_header(types, sec, 0, "cam"), K, width, height)}
    if mask_and_depth:
        if mask is None:
            mask = person.astype(np.uint8) * 255
        if depth is None:
            metres = person_depth_m(height, width)
            depth = (metres * 1000).astype(np.uint16) if depth_encoding == "16UC1" else metres
        messages["/mask"] = image_message(types, make_header(types, sec, 0, "cam"), mask, "mono8")
        messages["/depth"] = image_message(types, make_header(types, sec, 0, "cam"), depth, depth_encoding)
    messages["/image"] = image_message(types, make_header(types, sec, 0, "cam"), rgb, encoding)
    return messages


class Probe:
    """An rclpy node in the test process: publishes camera topics, records every message on the watched topics."""

    def __init__(self, name: str = "probe"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from rgbd_fusion_ros.messages import rclpy_types

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.types = rclpy_types()
        self.received: dict[str, list] = defaultdict(list)
        self._publishers = {}
        self._subscriptions = {}

    def publisher(self, topic: str, message_class, reliable: bool = False):
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

        if topic not in self._publishers:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
            self._publishers[topic] = self.node.create_publisher(message_class, topic, qos)
        return self._publishers[topic]

    def watch(self, topic: str, message_class, best_effort: bool = False) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        reliability = ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
        qos = QoSProfile(depth=50, reliability=reliability)
        self._subscriptions[topic] = self.node.create_subscription(
            message_class, topic, lambda msg: self.received[topic].append(msg), qos
        )

    def unwatch_all(self, keep: tuple[str, ...] = ()) -> None:
        for topic in [t for t in self._subscriptions if t not in keep]:
            self.node.destroy_subscription(self._subscriptions.pop(topic))

    def spin_until(self, condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def with_stamp(self, topic: str, sec: int, nanosec: int) -> list:
        return [m for m in self.received[topic] if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def message_class(probe: Probe, name: str):
    """A message class by its name: "DiagnosticArray" or one of ``rgbd_fusion_ros.messages.rclpy_types``."""
    if name == "DiagnosticArray":
        from diagnostic_msgs.msg import DiagnosticArray

        return DiagnosticArray
    return getattr(probe.types, name)


@contextmanager
def running_node(
    env: dict[str, str],
    ros_args: list[str],
    log_file: Path,
    probe_name: str,
    watched: dict[str, str],
    active_text: str = "active: matching",
    image_topic: str = "/image",
    camera_info_topic: str = "/camera_info",
    start_timeout_s: float = 90.0,
):
    """A node process and a Probe that talk: the node started with ``ros_args`` and active (``active_text`` in its
    log), the probe watching ``watched`` (topic -> message class name, see ``message_class``) and publishing on
    ``image_topic`` and ``camera_info_topic``, both sides discovered (the node subscribed to both, every watched
    topic but /diagnostics has the node's publisher: a first message on a publisher not yet matched is lost).
    Yields (probe, process, log_file); then closes the probe and stops the node, which must exit cleanly."""
    process = start_node(env, ros_args, log_file)
    probe = Probe(probe_name)
    try:
        wait_for_log(log_file, active_text, start_timeout_s, process)
        for topic, name in watched.items():
            probe.watch(topic, message_class(probe, name))
        inputs = [
            probe.publisher(image_topic, probe.types.Image),
            probe.publisher(camera_info_topic, probe.types.CameraInfo),
        ]
        outputs = [topic for topic in watched if topic != "/diagnostics"]
        discovered = probe.spin_until(
            lambda: (
                all(p.get_subscription_count() > 0 for p in inputs)
                and all(probe.node.count_publishers(t) > 0 for t in outputs)
            ),
            20,
        )
        assert discovered, "the node and the probe did not discover each other"
        probe.spin_for(0.5)  # the node's side of the output matching
        yield probe, process, log_file
    finally:
        probe.close()
        exit_code = stop_node(process)
    assert exit_code == 0, f"node exited with {exit_code}:\n{log_file.read_text()}"


def call_service(probe: Probe, service_type, name: str, request, timeout_s: float = 10.0):
    """Call a service of another process from the probe; fails when it is not there or does not answer."""
    client = probe.node.create_client(service_type, name)
    try:
        assert probe.spin_until(client.service_is_ready, timeout_s), f"service {name} not available"
        future = client.call_async(request)
        assert probe.spin_until(future.done, timeout_s), f"service {name} did not answer"
        return future.result()
    finally:
        probe.node.destroy_client(client)


def set_parameters(probe: Probe, node_name: str, **values):
    """SetParameters on ``node_name`` -> list of rcl_interfaces/SetParametersResult (one per value)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return call_service(probe, SetParameters, f"{node_name}/set_parameters", request).results


def lifecycle_state(probe: Probe, node_name: str) -> str:
    from lifecycle_msgs.srv import GetState

    return call_service(probe, GetState, f"{node_name}/get_state", GetState.Request()).current_state.label


def change_lifecycle_state(probe: Probe, node_name: str, transition: str) -> bool:
    """Trigger a lifecycle transition by label ("deactivate", "activate", ...); True when it succeeded."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    transition_id = getattr(Transition, f"TRANSITION_{transition.upper()}")
    request = ChangeState.Request(transition=Transition(id=transition_id))
    return call_service(probe, ChangeState, f"{node_name}/change_state", request).success


def fresh_diagnostics(probe: Probe) -> dict[str, float]:
    """The values of the next /diagnostics status the node publishes (counters are totals since start)."""
    probe.received["/diagnostics"].clear()
    assert probe.spin_until(lambda: probe.received["/diagnostics"], 5), "no /diagnostics within 5 s"
    return {kv.key: float(kv.value) for kv in probe.received["/diagnostics"][-1].status[0].values}


def assert_xyzrgb_cloud_layout(cloud) -> None:
    """PointCloud2 with float32 x, y, z, rgb at offsets 0/4/8/12, one row, 16 bytes per point."""
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("rgb", 12, 7, 1),
    ]
    assert (cloud.height, cloud.point_step, cloud.row_step) == (1, 16, 16 * cloud.width)
