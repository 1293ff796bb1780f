"""Benchmark rgbd_fusion_node in its own process over real rclpy / Fast DDS; prints one JSON object.

Sends camera frames (rgb8 + camera_info) from this process and receives depth, camera_info and points. Reports
the node's per-frame overhead (message conversion, output building incl. the point cloud, publishing; from the
node's /diagnostics) against the pipeline's own time, and input-stamp-to-publish latency p50/p95 (node side)
plus stamp-to-receive latency here.

    python benchmarks/bench_node.py --model MODEL_DIR [--frames 30] [--rate 0] [--width 640 --height 480]

--rate 0 sends the next frame when the previous one is answered (no drops: pure overhead); --rate R sends at R Hz
regardless (the node drops stale frames; latency under load).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig

    defaults = PipelineConfig()  # the node's own defaults (3 + 2 steps)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="model folder (default: the shipped model)")
    parser.add_argument("--frames", type=int, default=30, help="frames to send")
    parser.add_argument("--rate", type=float, default=0.0, help="send rate in Hz; 0 = wait for each answer")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--steps1", type=int, default=defaults.steps1, help="default: the node's")
    parser.add_argument("--steps2", type=int, default=defaults.steps2, help="default: the node's")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node / an answer")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_node_") as folder:
        env = {
            **os.environ,
            "ROS_DOMAIN_ID": str(10 + os.getpid() % 200),
            "ROS_LOG_DIR": folder,
            "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_large_messages.xml"),
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION")})
        log_path = Path(folder) / "node.log"
        ros_args = ["-p", f"steps1:={args.steps1}", "-p", f"steps2:={args.steps2}", "-p", "diagnostics_period_s:=0.5"]
        if args.model:
            ros_args += ["-p", f"model:={args.model}"]
        command = [sys.executable, "-m", "rgbd_fusion_ros.node", "--ros-args", *ros_args]
        with log_path.open("w") as log:
            node = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            report = run_benchmark(args, node, log_path)
        finally:
            node.send_signal(subprocess.signal.SIGINT)
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()
    print(json.dumps(report, indent=2))
    return 0


def run_benchmark(args: argparse.Namespace, node: subprocess.Popen, log_path: Path) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    from rgbd_fusion_ros.messages import camera_info_message, image_message, make_header, rclpy_types

    deadline = time.monotonic() + args.timeout
    while "active: matching" not in log_path.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the node did not become active:\n{log_path.read_text()}")
        time.sleep(0.1)

    rclpy.init()
    probe = rclpy.create_node("bench_node_probe")
    types = rclpy_types()
    received: dict[int, float] = {}  # stamp (ns) -> receive time (ns, wall clock)
    diagnostics: list = []
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def on_points(msg) -> None:
        received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = time.time_ns()

    probe.create_subscription(types.PointCloud2, "points", on_points, reliable)
    probe.create_subscription(types.Image, "depth/image", lambda msg: None, reliable)
    probe.create_subscription(types.CameraInfo, "depth/camera_info", lambda msg: None, reliable)
    probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, reliable)
    image_publisher = probe.create_publisher(types.Image, "image", qos_profile_sensor_data)
    info_publisher = probe.create_publisher(types.CameraInfo, "camera_info", qos_profile_sensor_data)
    spin_until(probe, lambda: image_publisher.get_subscription_count() > 0, args.timeout)
    spin_until(probe, lambda: False, 1.0)  # discovery of the output subscriptions

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    K = np.array([[args.width * 0.8, 0, args.width / 2], [0, args.width * 0.8, args.height / 2], [0, 0, 1]])
    sent = []
    started = time.monotonic()
    for i in range(args.frames):
        now = time.time_ns()
        header = make_header(types, now // 1_000_000_000, now % 1_000_000_000, "camera_optical_frame")
        info_publisher.publish(camera_info_message(types, header, K, args.width, args.height))
        image_publisher.publish(image_message(types, header, rgb, "rgb8"))
        sent.append(now)
        if args.rate > 0:
            spin_until(probe, lambda i=i: time.monotonic() - started >= (i + 1) / args.rate, args.timeout)
        else:
            spin_until(probe, lambda now=now: now in received, args.timeout)
    spin_until(probe, lambda: sent[-1] in received, min(args.timeout, 10.0))
    diagnostics.clear()
    spin_until(probe, lambda: diagnostics, 5.0)
    elapsed = time.monotonic() - started
    summary = {kv.key: float(kv.value) for kv in diagnostics[-1].status[0].values} if diagnostics else {}
    probe.destroy_node()
    rclpy.try_shutdown()

    end_to_end = np.array([received[s] - s for s in sent if s in received]) / 1e6
    overhead_ms = sum(summary.get(f"{stage}_ms", 0.0) for stage in ("convert", "build", "publish"))
    pipeline_ms = summary.get("pipeline_ms", float("nan"))
    return {
        "input": f"{args.width}x{args.height} rgb8 + camera_info",
        "model": args.model or "shipped default",
        "steps": [args.steps1, args.steps2],
        "mode": f"{args.rate} Hz open loop" if args.rate > 0 else "closed loop (next frame after each answer)",
        "frames_sent": len(sent),
        "frames_answered": len(end_to_end),
        "answered_per_s": len(end_to_end) / elapsed,
        "node_stage_ms": {k[:-3]: v for k, v in summary.items() if k.endswith("_ms") and "latency" not in k},
        "node_overhead_ms": overhead_ms,
        "pipeline_ms": pipeline_ms,
        "overhead_share_of_pipeline": overhead_ms / pipeline_ms,
        "stamp_to_publish_ms": {"p50": summary.get("latency_p50_ms"), "p95": summary.get("latency_p95_ms")},
        "stamp_to_receive_ms": {
            "p50": float(np.percentile(end_to_end, 50)) if end_to_end.size else None,
            "p95": float(np.percentile(end_to_end, 95)) if end_to_end.size else None,
        },
        "dropped": {k: summary.get(k, 0.0) for k in ("dropped_stale", "dropped_unmatched", "skipped_rate_limit")},
    }


def spin_until(node, condition, timeout_s: float) -> bool:
    import rclpy

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        rclpy.spin_once(node, timeout_sec=0.01)
    return bool(condition())


if __name__ == "__main__":
    sys.exit(main())
