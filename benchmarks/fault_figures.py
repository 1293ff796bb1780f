"""Re-run the fault figures of issue 12 from outside, with real components only; prints a table, writes JSON.

Node: a real ``rgbd_fusion_node`` process (the shipped model, backend auto, person_source none), started as the
ROS tests start it (``tests/ros/ros_graph.py``), gets malformed message sets of many kinds over real rclpy /
Fast DDS. Counted: sets sent, deaths, tracebacks and size of its log, refused kinds answered anyway. Then the
starvation figure: good frames at a period inference keeps up with (measured first), with a malformed set every
25 ms in between; counted: good frames answered of those sent. Variants: "spaced" (each good frame alone),
"waiting" (each good frame right behind another, so it waits in the worker's slot, a malformed set right behind
it), and "waiting" with only the kinds the node refuses in its worker (sensor depth values), which its cheap
checks on arrival do not cover. Run for two configurations: image + camera_info, and image + camera_info + mask
+ depth (stage-2-only mode).

Bags: real rosbag2 files (``write_demo_bag``) damaged in several ways go through ``rgbd-fusion bag``; counted:
runs, exit codes (a frame lost to damage must fail the run unless --allow-partial), input bags unchanged (sha256),
error messages naming the file, tracebacks; one run killed with SIGKILL, one with SIGTERM, then a rerun on the
same output: hidden ``.NAME.partial-*`` folders left.

    nice -n 5 python benchmarks/fault_figures.py --json results/fault_figures.json [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "ros")]

from ros_graph import (  # noqa: E402
    Probe,
    fresh_diagnostics,
    person_depth_m,
    person_frame_messages,
    pinhole,
    ros_environment,
    start_node,
    stop_node,
    wait_for_log,
)

HEIGHT, WIDTH = 240, 320
K_GOOD = pinhole(280.0, 280.0, 160.0, 120.0)
BAD_PERIOD_S = 0.025
BIG = 2**32 - 1
NODE_COUNTS = ("published", "bad_input", "dropped_stale", "dropped_unmatched")  # /diagnostics totals
TOPICS = ("/camera_info", "/mask", "/depth", "/image")  # publish order: the image last


# --- malformed message sets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of malformed set: ``edit`` changes a good set {topic: message} in place."""

    name: str
    part: str  # image, camera_info, header, mask or depth (mask and depth only for a node that takes them)
    edit: Callable[[dict], None]
    unmatched: bool = False  # its messages never match (stamps or a topic missing): never reaches the checks


def fields(topic: str, **values) -> Callable[[dict], None]:
    def edit(messages: dict) -> None:
        for name, value in values.items():
            setattr(messages[topic], name, value)

    return edit


def k_entry(index: int, value: float) -> Callable[[dict], None]:
    def edit(messages: dict) -> None:
        k = list(messages["/camera_info"].k)
        k[index] = value
        messages["/camera_info"].k = k

    return edit


def pixels(topic: str, array: np.ndarray, encoding: str) -> Callable[[dict], None]:
    def edit(messages: dict) -> None:
        msg = messages[topic]
        msg.data, msg.encoding = array.tobytes(), encoding
        msg.height, msg.width = array.shape[:2]
        msg.step = array.itemsize * array.shape[1] * (array.shape[2] if array.ndim == 3 else 1)

    return edit


def stamp(topic: str | None, sec: int | None = None, shift_ns: int = 0) -> Callable[[dict], None]:
    """Set the stamp of ``topic`` (None: every topic) to ``sec`` (None: keep it) plus ``shift_ns``."""

    def edit(messages: dict) -> None:
        for name, msg in messages.items():
            if topic in (None, name):
                total = (msg.header.stamp.sec if sec is None else sec) * 10**9 + msg.header.stamp.nanosec + shift_ns
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(total, 10**9)

    return edit


def frame_ids(frame_id: str) -> Callable[[dict], None]:
    def edit(messages: dict) -> None:
        for msg in messages.values():
            msg.header.frame_id = frame_id

    return edit


def drop(topic: str) -> Callable[[dict], None]:
    return lambda messages: messages.pop(topic)


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(messages: dict) -> None:
        for one in edits:
            one(messages)

    return edit


def kinds() -> list[Kind]:
    full = WIDTH * HEIGHT * 3
    shape = (HEIGHT, WIDTH)
    image = [
        Kind("encoding yuv422", "image", fields("/image", encoding="yuv422")),
        Kind("encoding empty", "image", fields("/image", encoding="")),
        Kind("encoding 10,000 characters", "image", fields("/image", encoding="y" * 10_000)),
        Kind("encoding non-ASCII", "image", fields("/image", encoding="rgb8\u00e9\u2603")),
        Kind("encoding mono8 (not colour)", "image", fields("/image", encoding="mono8")),
        Kind("encoding 32FC1 on the colour image", "image", fields("/image", encoding="32FC1")),
        Kind("step one byte short of a row", "image", fields("/image", step=WIDTH * 3 - 1)),
        Kind("step padded, data not", "image", fields("/image", step=WIDTH * 3 + 4)),
        Kind("step 0", "image", fields("/image", step=0)),
        Kind("data half the size", "image", fields("/image", data=bytes(full // 2))),
        Kind("data one byte too long", "image", fields("/image", data=bytes(full + 1))),
        Kind("data empty", "image", fields("/image", data=b"")),
        Kind("width 0", "image", fields("/image", width=0)),
        Kind("height 0", "image", fields("/image", height=0)),
        Kind("size 0x0, no data", "image", fields("/image", width=0, height=0, step=0, data=b"")),
        Kind("width 2^32-1", "image", fields("/image", width=BIG)),
        Kind("height and step 2^32-1", "image", fields("/image", height=BIG, step=BIG)),
        Kind("width and height swapped", "image", fields("/image", width=HEIGHT, height=WIDTH, step=HEIGHT * 3)),
    ]
    nan, inf = float("nan"), float("inf")
    camera_info = [
        Kind("K all zeros", "camera_info", fields("/camera_info", k=[0.0] * 9)),
        Kind("fx NaN", "camera_info", k_entry(0, nan)),
        Kind("fy +inf", "camera_info", k_entry(4, inf)),
        Kind("fx 1e30", "camera_info", k_entry(0, 1e30)),
        Kind("fx negative", "camera_info", k_entry(0, -280.0)),
        Kind("fx 0", "camera_info", k_entry(0, 0.0)),
        Kind("fx 1e-3", "camera_info", k_entry(0, 1e-3)),
        Kind("fy 1e7", "camera_info", k_entry(4, 1e7)),
        Kind("cx NaN", "camera_info", k_entry(2, nan)),
        Kind("cy -inf", "camera_info", k_entry(5, -inf)),
        Kind("cx 1e9", "camera_info", k_entry(2, 1e9)),
        Kind("cy -1e4", "camera_info", k_entry(5, -1e4)),
        Kind("skew NaN", "camera_info", k_entry(1, nan)),
        Kind("K[2,2] 0", "camera_info", k_entry(8, 0.0)),
        Kind("K[2,0] 1", "camera_info", k_entry(6, 1.0)),
        Kind("camera_info for 640x480", "camera_info", fields("/camera_info", width=640, height=480)),
        Kind("camera_info for 2^32-1 x 1", "camera_info", fields("/camera_info", width=BIG, height=1)),
        Kind("camera_info height 0", "camera_info", fields("/camera_info", height=0)),
        Kind("distortion: 1000 NaN coefficients", "camera_info", fields("/camera_info", d=[nan] * 1000)),
        Kind("distortion_model 10,000 characters", "camera_info", fields("/camera_info", distortion_model="x" * 10**4)),
        Kind("P all NaN", "camera_info", fields("/camera_info", p=[nan] * 12)),
        Kind("binning 2^32-1", "camera_info", fields("/camera_info", binning_x=BIG, binning_y=BIG)),
    ]
    header = [
        Kind("frame ids differ", "header", lambda m: setattr(m["/camera_info"].header, "frame_id", "other")),
        Kind("frame_id 10,000 characters", "header", frame_ids("f" * 10_000)),
        Kind("camera_info stamp 0.5 s off", "header", stamp("/camera_info", shift_ns=500_000_000), unmatched=True),
        Kind("camera_info stamp 11 ms off", "header", stamp("/camera_info", shift_ns=11_000_000), unmatched=True),
        Kind("no camera_info", "header", drop("/camera_info"), unmatched=True),
        Kind("camera_info only", "header", drop("/image"), unmatched=True),
        Kind("stamp 0", "header", stamp(None, sec=0)),
        Kind("stamp negative", "header", stamp(None, sec=-5)),
        Kind("stamp 2^31-1 s", "header", stamp(None, sec=2**31 - 1)),
    ]
    mask = [
        Kind("mask encoding rgb8", "mask", fields("/mask", encoding="rgb8")),
        Kind("mask encoding 10,000 characters", "mask", fields("/mask", encoding="m" * 10_000)),
        Kind("mask 160x120", "mask", pixels("/mask", np.full((120, 160), 255, np.uint8), "mono8")),
        Kind("mask step 0", "mask", fields("/mask", step=0)),
        Kind("mask data empty", "mask", fields("/mask", data=b"")),
        Kind("mask all zero", "mask", pixels("/mask", np.zeros(shape, np.uint8), "mono8")),
        Kind("no mask", "mask", drop("/mask"), unmatched=True),
    ]
    depth = [
        Kind("depth 65535 mm", "depth", pixels("/depth", np.full(shape, 65535, np.uint16), "16UC1")),
        Kind("depth 1e-30 m", "depth", pixels("/depth", np.full(shape, 1e-30, np.float32), "32FC1")),
        Kind("depth NaN", "depth", pixels("/depth", np.full(shape, np.nan, np.float32), "32FC1")),
        Kind("depth +inf", "depth", pixels("/depth", np.full(shape, np.inf, np.float32), "32FC1")),
        Kind("depth -2 m", "depth", pixels("/depth", np.full(shape, -2.0, np.float32), "32FC1")),
        Kind("depth 1e30 m", "depth", pixels("/depth", np.full(shape, 1e30, np.float32), "32FC1")),
        Kind("depth all 0 mm", "depth", pixels("/depth", np.zeros(shape, np.uint16), "16UC1")),
        Kind("depth encoding mono8", "depth", fields("/depth", encoding="mono8")),
        Kind("depth 160x120", "depth", pixels("/depth", np.full((120, 160), 2000, np.uint16), "16UC1")),
        Kind("depth step 1", "depth", fields("/depth", step=1)),
        Kind("depth data empty", "depth", fields("/depth", data=b"")),
        Kind(
            "depth 32FC1 flagged big-endian",
            "depth",
            both(pixels("/depth", person_depth_m(HEIGHT, WIDTH), "32FC1"), fields("/depth", is_bigendian=1)),
        ),
        Kind("no depth", "depth", drop("/depth"), unmatched=True),
    ]
    return image + camera_info + header + mask + depth


def good_set(types, sec: int, mask_and_depth: bool) -> dict:
    """{topic: message} of one good frame stamped (sec, 0); every message has a header of its own."""
    return person_frame_messages(types, sec, K_GOOD, HEIGHT, WIDTH, mask_and_depth=mask_and_depth)


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def expected_handling(kind: Kind, messages: dict) -> tuple[str, str | None]:
    """What the node's own checks make of a set: (handling, reason); the checks are the product's functions."""
    from rgbd_fusion_ros.conversions import check_messages, frame_from_messages

    if kind.unmatched:
        return "never matched", None
    inputs = (messages["/image"], messages["/camera_info"], messages.get("/mask"), messages.get("/depth"))
    for handling, check in (("refused on arrival", check_messages), ("refused by the worker", frame_from_messages)):
        try:
            check(*inputs)
        except ValueError as error:
            return handling, str(error)
    return "accepted", None


class NodeUnderFire:
    """A node process and the probe that sends it message sets and records which stamps were answered."""

    def __init__(self, env: dict, log: Path, name: str, mask_and_depth: bool):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.log, self.mask_and_depth = log, mask_and_depth
        ros_args = ["-r", f"__node:={name}", "-p", "diagnostics_period_s:=0.5"]
        if mask_and_depth:
            ros_args += ["-p", "use_mask:=true", "-p", "use_depth:=true", "-p", "reference_depth:=sensor"]
        self.process = start_node(env, ros_args, log)
        self.probe = Probe(f"{name}_probe")
        self.types = self.probe.types
        self.next_sec = 1000
        self.kind_of_stamp: dict[int, str] = {}
        self.answered: dict[int, float] = {}  # image stamp (ns) -> monotonic time /depth/image came back
        self.sent_at: dict[int, float] = {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.probe.node.create_subscription(
            self.types.Image, "/depth/image", lambda m: self.answered.setdefault(stamp_of(m), time.monotonic()), qos
        )
        from diagnostic_msgs.msg import DiagnosticArray

        self.probe.watch("/diagnostics", DiagnosticArray)
        try:
            wait_for_log(log, "active: matching", 300, self.process)
            image = self.probe.publisher("/image", self.types.Image)
            assert self.probe.spin_until(lambda: image.get_subscription_count() > 0, 30), "the node never subscribed"
            self.probe.spin_for(0.5)
        except BaseException:
            self.close()
            raise

    def build(self, kind: Kind | None) -> dict:
        messages = good_set(self.types, self.next_sec, self.mask_and_depth)
        self.next_sec += 1
        if kind is not None:
            kind.edit(messages)
        return messages

    def send(self, kind: Kind | None) -> int:
        """Publish one set (good when ``kind`` is None); returns the image stamp (ns)."""
        messages = self.build(kind)
        for topic in TOPICS:
            if topic in messages:
                message_class = self.types.CameraInfo if topic == "/camera_info" else self.types.Image
                self.probe.publisher(topic, message_class).publish(messages[topic])
        key = stamp_of(next(iter(messages.values()))) if "/image" not in messages else stamp_of(messages["/image"])
        self.kind_of_stamp[key] = "good" if kind is None else kind.name
        self.sent_at[key] = time.monotonic()
        return key

    def answer_time(self, key: int, timeout_s: float) -> float | None:
        """Seconds from sending ``key`` to its depth image, or None when it is not answered within the timeout."""
        self.probe.spin_until(lambda: key in self.answered, timeout_s)
        return self.answered[key] - self.sent_at[key] if key in self.answered else None

    def close(self) -> int:
        self.probe.close()
        return stop_node(self.process)


def per_frame_times(node: NodeUnderFire, frames: int) -> list[float]:
    """Answer times of good frames sent one at a time (after one answered frame: discovery can lose the first)."""
    for _ in range(10):
        if node.answer_time(node.send(None), 20) is not None:
            break
    else:
        raise RuntimeError(f"the node answered no good frame; log:\n{node.log.read_text()[-3000:]}")
    times = [node.answer_time(node.send(None), 30) for _ in range(frames)]
    return [t for t in times if t is not None]


def malformed_round(node: NodeUnderFire, kinds_sent: list[Kind], repeats: int) -> int:
    """Every kind ``repeats`` times, one set every 25 ms; returns the sets sent."""
    for _ in range(repeats):
        for kind in kinds_sent:
            node.send(kind)
            node.probe.spin_for(BAD_PERIOD_S)
    node.probe.spin_for(5.0)  # the worker finishes what it took
    return repeats * len(kinds_sent)


def starvation(node: NodeUnderFire, bad: list[Kind], good_frames: int, period_s: float, waiting: bool) -> dict:
    """Good frames every ``period_s``, a malformed set (``bad`` in turn) every 25 ms in between.

    waiting: each counted good frame follows another good one at once, so it waits in the worker's slot while
    that one is inferred, and the next malformed set follows it at once (the case that used to starve it)."""
    good, busy, bad_sent = [], [], 0
    before = fresh_diagnostics(node.probe)
    start = time.monotonic()
    next_good, next_bad = start + period_s / 2, start
    end = start + period_s / 2 + good_frames * period_s
    while (now := time.monotonic()) < end:
        if now >= next_good and len(good) < good_frames:
            busy += [node.send(None)] if waiting else []
            good.append(node.send(None))
            next_good += period_s
            next_bad = now if waiting else next_bad
        elif now >= next_bad:
            node.send(bad[bad_sent % len(bad)])
            bad_sent += 1
            next_bad = now + BAD_PERIOD_S
        else:
            node.probe.executor.spin_once(timeout_sec=min(next_good, next_bad) - now)
    node.probe.spin_until(lambda: all(key in node.answered for key in good + busy), 30)
    latencies = [node.answered[key] - node.sent_at[key] for key in good if key in node.answered]
    after = fresh_diagnostics(node.probe)
    return {
        "good_period_s": period_s,
        "good_sent": len(good),
        "good_answered": len(latencies),
        "preceding_good_sent": len(busy),
        "preceding_good_answered": sum(key in node.answered for key in busy),
        "good_lost_stamps_s": [key // 10**9 for key in good if key not in node.answered],
        "bad_sets_sent": bad_sent,
        "bad_interval_ms_mean": round(1000 * (end - start) / max(bad_sent, 1), 1),
        "bad_kinds_in_rotation": len(bad),
        "node_counts": {key: after.get(key, 0) - before.get(key, 0) for key in NODE_COUNTS},
        "answer_s_median": round(statistics.median(latencies), 3) if latencies else None,
        "answer_s_max": round(max(latencies), 3) if latencies else None,
    }


def log_figures(text: str) -> dict:
    lines = text.splitlines()
    warnings = [line for line in lines if "WARN" in line]
    distinct = sorted({re.sub(r"^.*?\]: | \(repeated \d+ times.*$", "", line)[:200] for line in warnings})
    return {
        "log_bytes": len(text.encode()),
        "log_lines": len(lines),
        "longest_log_line": max(map(len, lines), default=0),
        "tracebacks": text.count("Traceback"),
        "errors_logged": sum("ERROR" in line for line in lines),
        "warning_lines": len(warnings),
        "distinct_warnings": distinct,
    }


def node_figures(folder: Path, env: dict, config: str, repeats: int, good_frames: int, measured: int) -> dict:
    """The malformed-set run and the starvation figure against one node process."""
    mask_and_depth = config == "image+camera_info+mask+depth"
    log = folder / f"node_{len(list(folder.glob('node_*.log')))}.log"
    node = NodeUnderFire(env, log, f"fault_node_{int(mask_and_depth)}", mask_and_depth)
    parts = {"image", "camera_info", "header"} | ({"mask", "depth"} if mask_and_depth else set())
    chosen = [kind for kind in kinds() if kind.part in parts]
    handling = {kind.name: expected_handling(kind, node.build(kind)) for kind in chosen}
    try:
        times = per_frame_times(node, measured)
        period_s = max(1.0, round(3 * max(times), 1))  # inference keeps up with a good frame every period_s
        sent = malformed_round(node, chosen, repeats)
        by_handling = {how: [k for k in chosen if handling[k.name][0] == how] for how, _ in handling.values()}
        cheap = by_handling["refused on arrival"] + by_handling["never matched"]
        starved = {
            "spaced": starvation(
                node, cheap + by_handling.get("refused by the worker", []), good_frames, period_s, False
            ),
            "waiting": starvation(node, cheap, good_frames, period_s, True),
        }
        if by_handling.get("refused by the worker"):  # not among the cheap checks: these still take the slot
            starved["waiting_worker_refused_kinds"] = starvation(
                node, by_handling["refused by the worker"], good_frames, period_s, True
            )
        sent += sum(figure["bad_sets_sent"] for figure in starved.values())
        diagnostics = fresh_diagnostics(node.probe)
    finally:
        deaths = int(node.process.poll() is not None)  # it ended before we stopped it
        exit_code = node.close()
    text = log.read_text(errors="replace")
    per_kind = []
    for kind in chosen:
        how, reason = handling[kind.name]
        stamps = [key for key, name in node.kind_of_stamp.items() if name == kind.name]
        answered = sum(key in node.answered for key in stamps)
        logged = None if reason is None else f"skipping frame: {reason}"[:120] in text
        per_kind.append(
            {
                "kind": kind.name,
                "part": kind.part,
                "handling": how,
                "reason": reason,
                "answered": answered,
                "reason_logged": logged,
            }
        )
    return {
        "config": config,
        "kinds": len(chosen),
        "kinds_by_handling": {
            how: sum(k["handling"] == how for k in per_kind) for how in sorted({k["handling"] for k in per_kind})
        },
        "malformed_sets_sent": sent,
        "node_deaths": deaths,
        "exit_code_on_sigint": exit_code,
        "refused_kinds_answered": [k["kind"] for k in per_kind if k["handling"] != "accepted" and k["answered"]],
        "refusals_not_logged": [k["kind"] for k in per_kind if k["reason_logged"] is False],
        "per_frame_s": {
            "frames": len(times),
            "median": round(statistics.median(times), 3),
            "max": round(max(times), 3),
        },
        "starvation": starved,
        "diagnostics": {key: value for key, value in diagnostics.items() if not key.endswith("_ms")},
        **log_figures(text),
        "per_kind": per_kind,
    }


# --- bags -------------------------------------------------------------------------------------------------------

BAG_FRAMES = 12
BAG_TOPICS = ["--image-topic", "/camera/color/image_raw", "--camera-info-topic", "/camera/color/camera_info"]
BAG_FLAGS = ["--person-source", "none", "--batch", "2"]  # cartoon frames: no person finder


def storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))


def rewrite(change: Callable[[bytearray], bytes | bytearray]) -> Callable[[Path], None]:
    def damage(bag: Path) -> None:
        path = storage_file(bag)
        path.write_bytes(bytes(change(bytearray(path.read_bytes()))))

    return damage


def overwrite(fraction: float, flip: bool = False) -> Callable[[Path], None]:
    """4096 bytes at ``fraction`` of the storage file set to 0xff (``flip``: every bit inverted)."""

    def change(data: bytearray) -> bytearray:
        start = int(len(data) * fraction)
        block = data[start : start + 4096]
        data[start : start + 4096] = bytes(b ^ 0xFF for b in block) if flip else b"\xff" * len(block)
        return data

    return rewrite(change)


def metadata(old: str, new: str) -> Callable[[Path], None]:
    def damage(bag: Path) -> None:
        path = bag / "metadata.yaml"
        text = path.read_text()
        assert re.search(old, text), f"{old!r} not in {path}"
        path.write_text(re.sub(old, new, text))

    return damage


def rename_storage(bag: Path) -> None:
    path = storage_file(bag)
    path.rename(path.with_name("moved" + path.suffix))


def empty_folder(bag: Path) -> None:
    for path in bag.iterdir():
        path.unlink()


def mcap_profile(data: bytearray) -> bytearray:
    data[21:25] = b"\xff" * 4  # inside the profile string of the MCAP header record
    return data


# name, storage, damage (None: a clean bag), write_demo_bag extras, also run with --allow-partial
BAG_CASES = [
    ("clean sqlite3", "sqlite3", None, {}, False),
    ("clean mcap", "mcap", None, {}, False),
    ("2 of 12 image messages undecodable", "sqlite3", None, {"corrupt_images": (3, 8)}, True),
    ("sqlite3 truncated midway", "sqlite3", rewrite(lambda d: d[: len(d) // 2]), {}, True),
    ("sqlite3 4 KiB overwritten at 70%", "sqlite3", overwrite(0.7), {}, True),
    ("sqlite3 4 KiB bit-flipped midway", "sqlite3", overwrite(0.5, flip=True), {}, True),
    ("mcap truncated midway", "mcap", rewrite(lambda d: d[: len(d) // 2]), {}, True),
    ("mcap 4 KiB bit-flipped midway", "mcap", overwrite(0.5, flip=True), {}, True),
    ("mcap last 100 bytes cut", "mcap", rewrite(lambda d: d[:-100]), {}, True),
    ("mcap header profile not UTF-8", "mcap", rewrite(mcap_profile), {}, False),
    ("sqlite3 storage file empty", "sqlite3", rewrite(lambda d: b""), {}, False),
    ("mcap storage file empty", "mcap", rewrite(lambda d: b""), {}, False),
    ("metadata.yaml missing", "sqlite3", lambda bag: (bag / "metadata.yaml").unlink(), {}, False),
    ("metadata.yaml empty", "sqlite3", lambda bag: (bag / "metadata.yaml").write_text(""), {}, False),
    ("metadata.yaml not YAML", "sqlite3", lambda bag: (bag / "metadata.yaml").write_text("{[: 'x\n\t-"), {}, False),
    (
        "metadata.yaml says mcap, file is sqlite3",
        "sqlite3",
        metadata("storage_identifier: sqlite3", "storage_identifier: mcap"),
        {},
        False,
    ),
    ("metadata.yaml version 999", "sqlite3", metadata(r"version: 9\b", "version: 999"), {}, False),
    ("metadata.yaml names a missing file", "sqlite3", rename_storage, {}, False),
    ("metadata.yaml message counts wrong", "mcap", metadata(r"message_count: \d+", "message_count: 1000"), {}, False),
    ("bag folder empty", "sqlite3", empty_folder, {}, False),
]
QUICK_BAG_CASES = (
    "clean sqlite3",
    "sqlite3 truncated midway",
    "mcap 4 KiB bit-flipped midway",
    "metadata.yaml missing",
)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def bag_command(bag: Path, output: Path, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "rgbd-fusion"),
        "bag",
        str(bag),
        "--output",
        str(output),
        *BAG_TOPICS,
        *BAG_FLAGS,
        *extra,
    ]


def partial_folders(output: Path) -> int:
    """Hidden staging folders of runs writing ``output`` left beside it."""
    return len(list(output.parent.glob(f".{output.name}.partial-*")))


def bag_run(
    name: str, bag: Path, output: Path, *extra: str, clean: bool = False, damaged_file: Path | None = None
) -> dict:
    """One ``rgbd-fusion bag`` run, judged: a loss of frames never exits 0 unless --allow-partial (and then the
    summary says so); an error names the bag or its file; the input is never changed."""
    before = digest(bag)
    started = time.monotonic()
    done = subprocess.run(bag_command(bag, output, *extra), capture_output=True, text=True, timeout=600)
    after = digest(bag) if bag.exists() else {}
    output_text = done.stdout + done.stderr  # a failed run prints its summary on stderr
    processed = int(match.group(1)) if (match := re.search(r"processed: (\d+)", output_text)) else 0
    allow_partial = "--allow-partial" in extra
    if clean:
        as_expected = done.returncode == 0 and processed == BAG_FRAMES
    elif done.returncode != 0:
        as_expected = not output.exists()  # nothing written under the final name
    elif processed == BAG_FRAMES:
        as_expected = True  # the damage hit no byte the reader checks (pixels): nothing was lost
    else:
        as_expected = allow_partial and "frames lost to a damaged bag" in done.stdout
    error = " / ".join(line.strip() for line in done.stderr.strip().splitlines()) if done.returncode else ""
    named = [str(bag)] + ([str(damaged_file)] if damaged_file else [])
    return {
        "run": name + (" --allow-partial" if allow_partial else ""),
        "exit_code": done.returncode,
        "frames_processed": processed,
        "as_expected": as_expected,
        "damage_undetected": not clean and done.returncode == 0 and processed == BAG_FRAMES,
        "input_unchanged": before == after,
        "error_names_file": None if done.returncode == 0 else any(path in done.stderr for path in named),
        "tracebacks": output_text.count("Traceback"),
        "partial_folders_after": partial_folders(output),
        "stale_folder_removed_said": "the unfinished output of a run that was killed" in done.stderr,
        "error": error[:400],
        "seconds": round(time.monotonic() - started, 1),
    }


def damaged_bag_runs(folder: Path, quick: bool) -> list[dict]:
    from rgbd_fusion_ros.demo_bag import write_demo_bag

    runs = []
    for index, (name, storage, damage, extras, partial_too) in enumerate(BAG_CASES):
        if quick and name not in QUICK_BAG_CASES:
            continue
        case = folder / f"case{index}"
        case.mkdir()
        bag = case / "in"
        write_demo_bag(bag, frames=BAG_FRAMES, width=WIDTH, height=HEIGHT, storage=storage, **extras)
        damaged_file = storage_file(bag) if any(p.suffix in (".db3", ".mcap") for p in bag.iterdir()) else None
        if damage is not None:
            damage(bag)
        clean = damage is None and not extras
        runs.append(bag_run(name, bag, case / "out", clean=clean, damaged_file=damaged_file))
        if partial_too:
            runs.append(bag_run(name, bag, case / "out_partial", "--allow-partial", damaged_file=damaged_file))
    return runs


def killed_bag_runs(folder: Path) -> list[dict]:
    """A run killed with SIGKILL (its staging folder stays), one ended with SIGTERM (cleaned up at once), then a
    rerun on the killed run's output: it must remove the stale folder."""
    from rgbd_fusion_ros.demo_bag import write_demo_bag

    long_bag, small_bag = folder / "long", folder / "small"
    write_demo_bag(long_bag, frames=400)
    write_demo_bag(small_bag, frames=BAG_FRAMES)
    before = digest(long_bag)
    runs = []
    for kill_signal, output in ((signal.SIGKILL, folder / "out_kill"), (signal.SIGTERM, folder / "out_term")):
        process = subprocess.Popen(
            bag_command(long_bag, output, "--batch", "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 300
        while not list(folder.glob(f".{output.name}.partial-*/{output.name}/*.db3")) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a few frames written
        process.send_signal(kill_signal)
        stdout, stderr = process.communicate(timeout=120)
        runs.append(
            {
                "run": f"400 frames, {kill_signal.name} midway",
                "exit_code": process.returncode,
                "killed_midway": process.returncode != 0 and not output.exists(),
                "input_unchanged": digest(long_bag) == before,
                "tracebacks": (stdout + stderr).count("Traceback"),
                "partial_folders_after": partial_folders(output),
            }
        )
    runs.append(bag_run("rerun on the SIGKILLed output", small_bag, folder / "out_kill", clean=True))
    return runs


# --- report -----------------------------------------------------------------------------------------------------


def summary(nodes: list[dict], bag_runs: list[dict], killed: list[dict], partial_left: int) -> dict:
    every_run = bag_runs + killed

    def good(variant: str) -> str:
        figures = [n["starvation"][variant] for n in nodes if variant in n["starvation"]]
        return f"{sum(f['good_answered'] for f in figures)} of {sum(f['good_sent'] for f in figures)}"

    return {
        "malformed_sets_sent": sum(n["malformed_sets_sent"] for n in nodes),
        "malformed_kinds": max(n["kinds"] for n in nodes),
        "node_deaths": sum(n["node_deaths"] + (n["exit_code_on_sigint"] != 0) for n in nodes),
        "node_tracebacks": sum(n["tracebacks"] for n in nodes),
        "node_log_bytes_max": max(n["log_bytes"] for n in nodes),
        "refused_kinds_answered": sum(len(n["refused_kinds_answered"]) for n in nodes),
        "good_frames_answered (spaced)": good("spaced"),
        "good_frames_answered (waiting)": good("waiting"),
        "good_frames_answered (waiting, worker-refused kinds)": good("waiting_worker_refused_kinds"),
        "bag_runs": len(every_run),
        "bag_runs_as_expected": sum(r.get("as_expected", r.get("killed_midway")) for r in every_run),
        "bag_runs_input_unchanged": sum(r["input_unchanged"] for r in every_run),
        "bag_runs_failed": sum(r["exit_code"] != 0 for r in bag_runs),
        "bag_errors_naming_the_file": sum(bool(r.get("error_names_file")) for r in bag_runs),
        "bag_errors_not_naming_the_file": [r["run"] for r in bag_runs if r.get("error_names_file") is False],
        "bag_damage_undetected (all frames read)": sum(r.get("damage_undetected", False) for r in bag_runs),
        "bag_tracebacks": sum(r["tracebacks"] for r in every_run),
        "partial_folders_after_sigkill": killed[0]["partial_folders_after"],
        "partial_folders_left_after_rerun": partial_left,
    }


def print_table(report: dict) -> None:
    rows = [(name, value) for name, value in report["summary"].items()]
    for node in report["nodes"]:
        tag = f"[{node['config']}]"
        rows += [
            (f"{tag} kinds / sets sent", f"{node['kinds']} / {node['malformed_sets_sent']}"),
            (f"{tag} s per good frame (median, max)", f"{node['per_frame_s']['median']}, {node['per_frame_s']['max']}"),
            (
                f"{tag} log bytes, longest line, tracebacks",
                f"{node['log_bytes']}, {node['longest_log_line']}, {node['tracebacks']}",
            ),
        ]
        for variant, s in node["starvation"].items():
            rows.append(
                (
                    f"{tag} {variant}: good every {s['good_period_s']} s, bad every {s['bad_interval_ms_mean']} ms",
                    f"{s['good_answered']} of {s['good_sent']} answered ({s['bad_sets_sent']} bad sets)",
                )
            )
    for r in report["bag_runs"]:
        rows.append((f"bag: {r['run']}", f"rc {r['exit_code']}, ok {r.get('as_expected', r.get('killed_midway'))}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every figure here (and the node logs beside it)")
    parser.add_argument("--quick", action="store_true", help="a short run: one node configuration, fewer repeats")
    args = parser.parse_args()
    started = time.monotonic()
    configs = ["image+camera_info+mask+depth"] + ([] if args.quick else ["image+camera_info"])
    repeats, good_frames, measured = (2, 5, 3) if args.quick else (25, 30, 8)
    with tempfile.TemporaryDirectory(prefix="fault_figures_") as name:
        folder = Path(name)
        env = ros_environment(folder / "ros_log")
        nodes = [node_figures(folder, env, config, repeats, good_frames, measured) for config in configs]
        (folder / "bags").mkdir()
        bag_runs = damaged_bag_runs(folder / "bags", args.quick)
        (folder / "kill").mkdir()
        killed = killed_bag_runs(folder / "kill")
        partial_left = len(list(folder.rglob(".*.partial-*")))
        if args.json:  # the node logs, beside the figures
            args.json.parent.mkdir(parents=True, exist_ok=True)
            for log in folder.glob("node_*.log"):
                shutil.copy(log, args.json.with_name(f"{args.json.stem}_{log.name}"))
    report = {
        "quick": args.quick,
        "wall_s": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "good_frame_period_rule": "max(1 s, 3 x the slowest of the good frames first sent one at a time), 0.1 s steps",
        "summary": summary(nodes, bag_runs, killed, partial_left),
        "nodes": nodes,
        "bag_runs": bag_runs + killed,
    }
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
