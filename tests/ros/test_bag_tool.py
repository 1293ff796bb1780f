"""The offline bag tool: real rosbag2 files in (rosbags, sqlite3 and mcap), the real Pipeline with a tiny model,
real bags out, read back with rosbags and with rclpy's own deserialisation; the CLI as a subprocess."""

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags")

from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from rgbd_fusion_core.inference.pipeline_io import PipelineConfig  # noqa: E402
from rgbd_fusion_ros import bag_output, conversions  # noqa: E402
from rgbd_fusion_ros.bag_io import NS, FrameTopics, StampMatcher, stamp_ns  # noqa: E402
from rgbd_fusion_ros.bag_processing import BagJob, process_bag  # noqa: E402
from rgbd_fusion_ros.bag_tool import main  # noqa: E402
from rgbd_fusion_ros.demo_bag import START_NS, TOPICS, write_demo_bag  # noqa: E402
from rgbd_fusion_ros.messages import OutputOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
OUT = "/rgbd_fusion"
FAST = ["--steps1", "1", "--steps2", "1", "--device", "cpu", "--person-source", "none"]  # cartoon frames: no finder


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    from rgbd_fusion_core.inference.pipeline import Pipeline

    return Pipeline.from_pretrained(
        tiny_model_dir, device="cpu", config=PipelineConfig(steps1=1, steps2=1, seed=3, person_source="none")
    )


def make_job(bag, output, compressed=False, **overrides) -> BagJob:
    image = TOPICS.compressed_image if compressed else TOPICS.image
    settings = dict(
        input=bag,
        output=output,
        topics=FrameTopics(image, TOPICS.camera_info),
        output_options=OutputOptions(),
        batch=2,
        progress=False,
    )
    settings.update(overrides)
    return BagJob(**settings)


def read_bag(path):
    """topic -> list of (log time, connection, raw bytes); and the reader's metadata."""
    messages = {}
    with Reader(path) as reader:
        for connection, log_time, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((log_time, connection, bytes(raw)))
        connections = {c.topic: c for c in reader.connections}
    return messages, connections


def folder_digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(path).iterdir())}


def subprocess_env():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["OMP_NUM_THREADS"] = "1"
    return env


# The CLI with every ROS Python package made unimportable: proves the bag tool runs on a machine without ROS.
CLI_WITHOUT_ROS = (
    "import sys\n"
    "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'builtin_interfaces', 'rcl_interfaces', 'rosidl_runtime_py'):\n"
    "    sys.modules[name] = None\n"
    "from rgbd_fusion_core.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def cli(*args):
    """The ``rgbd-fusion bag`` command line, run without ROS packages."""
    return [sys.executable, "-c", CLI_WITHOUT_ROS, "bag", *map(str, args)]


def stamped(stamp):
    """A message-like object with only a header stamp (what the matcher reads)."""
    sec, nanosec = divmod(stamp, NS)
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)), stamp=stamp)


def finishes(call, timeout_s=120):
    """``call()`` on a thread: its result, or its exception re-raised here; fails the test if it hangs."""
    outcome = {}

    def target():
        try:
            outcome["result"] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"hung for {timeout_s} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def no_bag_threads_left():
    return not [t.name for t in threading.enumerate() if t.name in ("bag-reader", "bag-writer")]


def test_matcher_pairs_nearest_stamp_in_order_and_waits_for_late_partners():
    ms = 1_000_000
    matcher = StampMatcher(("camera_info",), tolerance_ns=5 * ms, wait_ns=NS)
    matcher.add_partner("camera_info", stamped(98 * ms))  # before its image, 2 ms off
    matcher.add_image(100 * ms, stamped(100 * ms))
    matcher.add_image(200 * ms, stamped(200 * ms))
    matcher.add_image(300 * ms, stamped(300 * ms))
    matcher.add_partner("camera_info", stamped(101 * ms))  # nearer to the first image, but 100 ms may follow
    assert list(matcher.decided(now_ns=201 * ms)) == []
    matcher.add_partner("camera_info", stamped(200 * ms))  # later than 100 + 5 ms: nothing nearer can follow
    decided = list(matcher.decided(now_ns=202 * ms))
    assert [(f.image.stamp, f.camera_info.stamp, f.problem) for f in decided] == [
        (100 * ms, 101 * ms, None),
        (200 * ms, 200 * ms, None),
    ]
    assert list(matcher.decided(now_ns=1_000 * ms)) == []  # the third still waits for its camera_info
    (third,) = list(matcher.decided(now_ns=1_301 * ms))  # ... until the wait is over
    assert third.camera_info is None and third.problem == "no camera_info within 5 ms of the image stamp"


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
def test_output_bag_holds_node_topics_with_input_stamps(tmp_path, pipeline, storage, compressed):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=3, storage=storage, compressed=compressed, missing_camera_info=(1,))
    before = folder_digest(bag)
    summary = process_bag(make_job(bag, tmp_path / "out", compressed, copy_input=True), pipeline)

    assert folder_digest(bag) == before  # the input is only read
    assert (summary.images_read, summary.processed) == (3, 2)
    assert summary.skipped == {"no camera_info within 10 ms of the image stamp": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no staging folder left behind

    messages, connections = read_bag(tmp_path / "out")
    image_topic = TOPICS.compressed_image if compressed else TOPICS.image
    outputs = [f"{OUT}/depth/image", f"{OUT}/depth/camera_info", f"{OUT}/points"]
    assert sorted(messages) == sorted(outputs + [image_topic, TOPICS.camera_info])
    assert [len(messages[t]) for t in outputs] == [2, 2, 2]
    inputs, _ = read_bag(bag)
    assert messages[image_topic] == [
        (t, messages[image_topic][i][1], raw) for i, (t, _, raw) in enumerate(inputs[image_topic])
    ]  # copied byte for byte, same log times
    processed_log_times = [inputs[image_topic][i][0] for i in (0, 2)]
    expected_stamps = [START_NS, START_NS + 200_000_000]
    for topic in outputs:
        assert [t for t, _, _ in messages[topic]] == processed_log_times
        decoded = [TYPESTORE.deserialize_cdr(raw, c.msgtype) for _, c, raw in messages[topic]]
        assert [stamp_ns(m.header) for m in decoded] == expected_stamps
        assert {m.header.frame_id for m in decoded} == {"camera_color_optical_frame"}

    depth = TYPESTORE.deserialize_cdr(messages[f"{OUT}/depth/image"][0][2], "sensor_msgs/msg/Image")
    assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", 256, 256, 1024)
    values = np.frombuffer(depth.data, np.float32)
    assert np.isfinite(values).any() and (values[np.isfinite(values)] > 0).all()  # metres; NaN = no person
    info = TYPESTORE.deserialize_cdr(messages[f"{OUT}/depth/camera_info"][0][2], "sensor_msgs/msg/CameraInfo")
    assert (info.width, info.height) == (256, 256) and info.k[0] > 0 and info.k[8] == 1
    cloud = TYPESTORE.deserialize_cdr(messages[f"{OUT}/points"][0][2], "sensor_msgs/msg/PointCloud2")
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("rgb", 12, 7, 1),
    ]
    assert cloud.point_step == 16 and cloud.height == 1 and cloud.width == np.isfinite(values).sum()
    assert len(cloud.data) == cloud.row_step == 16 * cloud.width

    metadata = (tmp_path / "out" / "metadata.yaml").read_text()
    assert "version: 9" in metadata and f"storage_identifier: {storage}" in metadata
    qos = connections[f"{OUT}/points"].ext.offered_qos_profiles
    assert len(qos) == 1 and qos[0].reliability.name == "RELIABLE"


def test_rclpy_reads_the_output_messages(tmp_path, pipeline):
    serialization = pytest.importorskip("rclpy.serialization", reason="rclpy is not installed here")
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=1, storage="mcap")
    process_bag(make_job(bag, tmp_path / "out", output_options=OutputOptions(low_res=True)), pipeline)
    messages, _ = read_bag(tmp_path / "out")
    classes = {
        "depth/image": sensor_msgs.Image,
        "depth/low_res": sensor_msgs.Image,
        "depth/camera_info": sensor_msgs.CameraInfo,
        "points": sensor_msgs.PointCloud2,
    }
    assert sorted(messages) == sorted(f"{OUT}/{name}" for name in classes)
    for name, message_class in classes.items():
        ((_, connection, raw),) = messages[f"{OUT}/{name}"]
        ours = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
        theirs = serialization.deserialize_message(raw, message_class)
        assert theirs.header.stamp.sec == ours.header.stamp.sec and theirs.header.frame_id == ours.header.frame_id
        if name == "depth/camera_info":
            np.testing.assert_array_equal(np.asarray(theirs.k), ours.k)
        else:
            assert bytes(theirs.data) == bytes(ours.data)
    low_res = serialization.deserialize_message(messages[f"{OUT}/depth/low_res"][0][2], sensor_msgs.Image)
    assert (low_res.width, low_res.height, low_res.encoding) == (64, 64, "32FC1")


def test_cli_without_ros_with_mask_depth_and_export_dir(tmp_path, tiny_model_dir):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=2, storage="sqlite3", with_mask=True, with_depth=True)
    export = tmp_path / "files"
    completed = subprocess.run(
        cli(
            bag,
            "--output",
            tmp_path / "out",
            "--image-topic",
            TOPICS.image,
            "--camera-info-topic",
            TOPICS.camera_info,
            "--mask-topic",
            TOPICS.mask,
            "--depth-topic",
            TOPICS.depth,
            "--model",
            tiny_model_dir,
            *FAST,
            "--storage",
            "mcap",
            "--depth-encoding",
            "16UC1",
            "--export-dir",
            export,
        ),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "frames read: 2, processed: 2, skipped: 0" in completed.stdout
    assert list((tmp_path / "out").glob("*.mcap"))
    messages, _ = read_bag(tmp_path / "out")
    depth = TYPESTORE.deserialize_cdr(messages[f"{OUT}/depth/image"][0][2], "sensor_msgs/msg/Image")
    assert depth.encoding == "16UC1"
    millimetres = np.frombuffer(depth.data, np.uint16)
    assert abs(np.median(millimetres[millimetres > 0]) - 2500) < 300  # scale from the 2.5 m sensor depth

    rows = (export / "index.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and header[:7] == ["frame", "stamp_ns", "stamp", "frame_id", "depth_png", "depth_npy", "ply"]
    first = dict(zip(header, rows[1].split(",")))
    assert int(first["stamp_ns"]) == START_NS and first["z_ref_source"] == "sensor"
    png = cv2.imread(str(export / first["depth_png"]), cv2.IMREAD_UNCHANGED)
    npy = np.load(export / first["depth_npy"]).astype(np.float64)
    assert png.dtype == np.uint16 and png.shape == npy.shape == (256, 256)
    np.testing.assert_array_equal(png, np.where(np.isfinite(npy), np.rint(np.nan_to_num(npy) * 1000.0), 0))
    ply = (export / first["ply"]).read_bytes()
    assert f"element vertex {first['points']}\n".encode() in ply and int(first["points"]) == np.isfinite(npy).sum()


def test_same_seed_gives_identical_output(tmp_path, pipeline):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=2)
    for name in ("a", "b"):
        process_bag(make_job(bag, tmp_path / name), pipeline)
    first, _ = read_bag(tmp_path / "a")
    second, _ = read_bag(tmp_path / "b")
    assert [raw for _, _, raw in first[f"{OUT}/depth/image"]] == [raw for _, _, raw in second[f"{OUT}/depth/image"]]


def test_every_start_end_prefix_and_frame_id(tmp_path, pipeline):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=6)  # images at 0.0, 0.1, ... 0.5 s
    job = make_job(bag, tmp_path / "out", every=2, start_s=0.15, end_s=0.45, prefix="/people", frame_id="crop_frame")
    summary = process_bag(job, pipeline)
    assert (summary.images_read, summary.processed) == (3, 2)
    assert summary.skipped == {"not selected (--every)": 1}
    messages, _ = read_bag(tmp_path / "out")
    decoded = [TYPESTORE.deserialize_cdr(raw, "sensor_msgs/msg/Image") for _, _, raw in messages["/people/depth/image"]]
    assert [stamp_ns(m.header) - START_NS for m in decoded] == [200_000_000, 400_000_000]
    assert {m.header.frame_id for m in decoded} == {"crop_frame"}


def test_corrupt_image_messages_are_skipped_and_counted(tmp_path, pipeline):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=3, corrupt_images=(1,))
    with pytest.raises(RuntimeError, match=r"the bag .*in is damaged: 1 frame\(s\) lost, nothing written"):
        process_bag(make_job(bag, tmp_path / "out"), pipeline)  # a loss is never silent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    summary = process_bag(make_job(bag, tmp_path / "out", allow_partial=True), pipeline)
    assert summary.processed == 2 and summary.frames_lost() == 1
    assert summary.skipped == {"image message cannot be decoded (SerdeError)": 1}
    assert summary.corrupt_messages == {TOPICS.image: 1}
    assert "undecodable messages on /camera/color/image_raw: 1" in "\n".join(summary.lines())


def test_nothing_processable_fails_and_writes_nothing(tmp_path, pipeline):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=2, missing_camera_info=(0, 1))
    with pytest.raises(RuntimeError, match="no frame could be processed(.|\n)*skipped 2: no camera_info"):
        process_bag(make_job(bag, tmp_path / "out"), pipeline)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", r"cannot read bag .*in.*truncated or corrupt"),
        ("no_metadata", r"has no metadata.yaml"),
        (
            "empty_metadata",
            r"metadata .*in/metadata.yaml: expected a rosbag2_bagfile_information mapping, found an empty",
        ),
        ("metadata_not_yaml", r"metadata .*in/metadata.yaml: not valid YAML"),
        ("header", r"cannot read bag .*in: the storage file .*in/in.mcap is corrupt \(UnicodeDecodeError"),
    ],
)
def test_damaged_bag_gives_a_clear_error(tmp_path, pipeline, damage, message):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=2, storage="mcap")
    storage_file = next(bag.glob("*.mcap"))
    if damage == "truncate":
        storage_file.write_bytes(storage_file.read_bytes()[:-100])
    elif damage == "header":  # the profile string of the MCAP header record: was a bare "'utf-8' codec can't ..."
        data = bytearray(storage_file.read_bytes())
        data[21:25] = b"\xff" * 4
        storage_file.write_bytes(bytes(data))
    elif damage == "empty_metadata":  # was "the storage file ... is corrupt (TypeError: 'NoneType' object ...)"
        (bag / "metadata.yaml").write_text("")
    elif damage == "metadata_not_yaml":
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed")
    else:
        (bag / "metadata.yaml").unlink()
    with pytest.raises(RuntimeError, match=message):
        process_bag(make_job(bag, tmp_path / "out"), pipeline)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_bag_damaged_midway_fails_unless_partial_output_is_allowed(tmp_path, pipeline, tiny_model_dir, capsys):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=8, storage="sqlite3")
    database = next(bag.glob("*.db3"))
    data = bytearray(database.read_bytes())
    middle = int(len(data) * 0.7)
    data[middle : middle + 4096] = b"\xff" * 4096  # one overwritten page late in the file
    database.write_bytes(bytes(data))
    # by default the loss fails the run (it exited 0 with 2 of 12 frames written, the loss only in stdout)
    args = [bag, "--output", tmp_path / "out", "--image-topic", TOPICS.image, "--camera-info-topic", TOPICS.camera_info]
    args = [*map(str, args), "--model", str(tiny_model_dir), *FAST]
    assert finishes(lambda: main(args)) == 1  # the reader thread's error reaches the main thread: no hang
    error = capsys.readouterr().err
    assert re.search(r"the bag .*in is damaged: [1-7] frame\(s\) lost, nothing written", error), error
    assert f"{database} is corrupt" in error and "malformed" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"] and no_bag_threads_left()
    summary = process_bag(make_job(bag, tmp_path / "out", allow_partial=True), pipeline)
    assert "malformed" in summary.read_error and 0 < summary.processed < 8
    assert summary.frames_lost() == 8 - summary.images_read > 0
    assert f"frames lost to a damaged bag: {8 - summary.images_read}" in "\n".join(summary.lines())
    assert "could not be read to its end" in "\n".join(summary.lines())
    messages, _ = read_bag(tmp_path / "out")
    assert len(messages[f"{OUT}/depth/image"]) == summary.processed


def test_existing_output_needs_overwrite(tmp_path, pipeline, capsys):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=1)
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("precious")
    args = [str(bag), "--output", str(output), "--image-topic", TOPICS.image, "--camera-info-topic", TOPICS.camera_info]
    assert main(args) == 1
    assert "exists already (use --overwrite" in capsys.readouterr().err
    assert (output / "keep.txt").read_text() == "precious"
    process_bag(make_job(bag, output, overwrite=True), pipeline)
    assert not (output / "keep.txt").exists() and (output / "metadata.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    with pytest.raises(ValueError, match="overlaps the input"):
        process_bag(make_job(bag, bag, overwrite=True), pipeline)


def test_missing_topic_lists_the_topics_of_the_bag(tmp_path, capsys):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=1)
    args = [
        str(bag),
        "--output",
        str(tmp_path / "out"),
        "--image-topic",
        "/camera/rgb",
        "--camera-info-topic",
        TOPICS.camera_info,
    ]
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "--image-topic /camera/rgb is not in" in error
    assert f"{TOPICS.image}  [sensor_msgs/msg/Image]  1 messages" in error and TOPICS.camera_info in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_leaves_no_output_under_the_final_name(tmp_path, tiny_model_dir, kill_signal):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=400)  # long enough that the (fast, ONNX Runtime) run is still going when killed
    output = tmp_path / "out"
    process = subprocess.Popen(
        cli(
            bag,
            "--output",
            output,
            "--image-topic",
            TOPICS.image,
            "--camera-info-topic",
            TOPICS.camera_info,
            "--model",
            tiny_model_dir,
            *FAST,
            "--batch",
            "1",
        ),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.partial-*/out/*.db3")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # let it write a few frames
    process.send_signal(kill_signal)
    process.communicate(timeout=60)
    assert process.returncode != 0  # killed mid-way, not finished
    assert not output.exists()
    staging = list(tmp_path.glob(".out.partial-*"))
    if kill_signal == signal.SIGTERM:
        assert staging == []  # cleaned up on a catchable signal
        return
    assert len(staging) == 1  # SIGKILL cannot be caught: the hidden staging folder stays, never the output
    assert staging[0].name.startswith(f".out.partial-{process.pid}-")
    alive = tmp_path / f".out.partial-{os.getpid()}-running"  # a run still going (this process) is left alone
    alive.mkdir()
    write_demo_bag(tmp_path / "small", frames=1)
    args = ["--output", output, "--image-topic", TOPICS.image, "--camera-info-topic", TOPICS.camera_info]
    again = subprocess.run(
        cli(tmp_path / "small", *args, "--model", tiny_model_dir, *FAST),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert f"removed {staging[0]}, the unfinished output of a run that was killed" in again.stderr
    assert sorted(p.name for p in tmp_path.glob(".out.partial-*")) == [alive.name]
    assert (output / "metadata.yaml").exists()


def test_overlap_reads_ahead_and_writes_during_inference(tmp_path, pipeline, monkeypatch):
    """Event order, not durations: inference of batch 1 waits until the reader has converted a frame of batch 2
    (a serial run would only read it after batch 1), and writing batch 1 waits until inference of batch 2 has
    begun (a serial run would write it first); each wait gives up after 30 s and the test then fails."""
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=6, storage="sqlite3")
    frame_of_batch_2_read, inference_2_began = threading.Event(), threading.Event()
    waits = {}
    converted = []

    def convert(*args):
        converted.append(args[0])
        if len(converted) == 3:  # the first frame of batch 2 (batch=2)
            frame_of_batch_2_read.set()
        return frame_from_messages(*args)

    def flush(self, upto_ns):
        if upto_ns is not None and "write 1" not in waits:
            waits["write 1"] = inference_2_began.wait(30)
        original_flush(self, upto_ns)

    class Recording:
        calls = 0

        def __call__(self, frames):
            self.calls += 1
            if self.calls == 1:
                waits["inference 1"] = frame_of_batch_2_read.wait(30)
            if self.calls == 2:
                inference_2_began.set()
            return pipeline(frames)

    frame_from_messages, original_flush = conversions.frame_from_messages, bag_output.OrderedBagWriter.flush
    monkeypatch.setattr(conversions, "frame_from_messages", convert)
    monkeypatch.setattr(bag_output.OrderedBagWriter, "flush", flush)
    summary = finishes(lambda: process_bag(make_job(bag, tmp_path / "out"), Recording()))
    assert waits == {"inference 1": True, "write 1": True}
    assert summary.processed == 6 and summary.read_s > 0 and summary.infer_s > 0 and summary.write_s > 0


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_overlapped_output_keeps_bag_order(tmp_path, pipeline, storage):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=11, storage=storage, missing_camera_info=(2, 3, 7))
    job = make_job(bag, tmp_path / "out", batch=3, copy_input=True, output_options=OutputOptions(low_res=True))
    summary = finishes(lambda: process_bag(job, pipeline))
    assert summary.processed == 8 and summary.skipped == {"no camera_info within 10 ms of the image stamp": 3}
    messages, _ = read_bag(tmp_path / "out")
    inputs, _ = read_bag(bag)
    processed = [t for i, (t, _, _) in enumerate(inputs[TOPICS.image]) if i not in (2, 3, 7)]
    for name in ("depth/image", "depth/low_res", "depth/camera_info", "points"):
        decoded = [TYPESTORE.deserialize_cdr(raw, c.msgtype) for _, c, raw in messages[f"{OUT}/{name}"]]
        assert [t for t, _, _ in messages[f"{OUT}/{name}"]] == processed
        assert [stamp_ns(m.header) for m in decoded] == [t - inputs[TOPICS.image][0][0] + START_NS for t in processed]
    assert [raw for _, _, raw in messages[TOPICS.image]] == [raw for _, _, raw in inputs[TOPICS.image]]
    if storage == "sqlite3":  # written in log-time order, as a player expects
        with sqlite3.connect(next((tmp_path / "out").glob("*.db3"))) as database:
            times = [t for (t,) in database.execute("SELECT timestamp FROM messages ORDER BY id")]
        assert times == sorted(times) and len(times) == 4 * 8 + 11 + 11 - 3


def test_reader_error_midway_names_the_bag_and_stops_every_thread(tmp_path, pipeline, monkeypatch):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=12, storage="sqlite3")
    frame_from_messages = conversions.frame_from_messages
    converted = []

    def convert(*args):  # an error the reader does not expect (not a damaged message), on the 7th frame
        converted.append(1)
        if len(converted) == 7:
            raise OSError("device went away")
        return frame_from_messages(*args)

    monkeypatch.setattr(conversions, "frame_from_messages", convert)
    database = next(bag.glob("*.db3"))
    with pytest.raises(RuntimeError, match=rf"reading {re.escape(str(database))} failed \(OSError: device went away"):
        finishes(lambda: process_bag(make_job(bag, tmp_path / "out"), pipeline))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"] and no_bag_threads_left()


def test_writer_error_names_the_output_and_stops_every_thread(tmp_path, pipeline, monkeypatch):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=12, storage="mcap")
    original_flush, flushes = bag_output.OrderedBagWriter.flush, []

    def flush(self, upto_ns):
        flushes.append(upto_ns)
        if len(flushes) == 2:
            raise OSError(28, "No space left on device")
        original_flush(self, upto_ns)

    monkeypatch.setattr(bag_output.OrderedBagWriter, "flush", flush)
    output = tmp_path / "out"
    with pytest.raises(RuntimeError, match=rf"writing {re.escape(str(output))} failed \(OSError: .*No space left"):
        finishes(lambda: process_bag(make_job(bag, output), pipeline))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"] and no_bag_threads_left()


def test_inference_error_midway_stops_reader_and_writer(tmp_path, pipeline):
    bag = tmp_path / "in"
    write_demo_bag(bag, frames=40, storage="sqlite3")
    calls = []

    def failing(frames):
        calls.append(len(frames))
        if len(calls) == 3:
            raise RuntimeError("backend lost the device")
        return pipeline(frames)

    with pytest.raises(RuntimeError, match="backend lost the device"):
        finishes(lambda: process_bag(make_job(bag, tmp_path / "out", batch=1), failing))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"] and no_bag_threads_left()
