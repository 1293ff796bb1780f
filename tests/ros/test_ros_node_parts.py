"""The node's plain-Python parts: stamp synchroniser, latest-item worker, parameter table and validation,
message throttle, statistics. No ROS graph needed."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("rcl_interfaces", reason="rcl_interfaces (ROS parameter messages) is not installed")

from rgbd_fusion_ros.parameters import PARAMETERS, settings_from_parameters  # noqa: E402
from rgbd_fusion_ros.parameters import descriptor as parameter_descriptor  # noqa: E402
from rgbd_fusion_ros.stats import NodeStats  # noqa: E402
from rgbd_fusion_ros.sync import StampSynchronizer  # noqa: E402
from rgbd_fusion_ros.throttle import MessageThrottle  # noqa: E402
from rgbd_fusion_ros.worker import LatestItemWorker  # noqa: E402

MS = 1_000_000


# --- StampSynchronizer ----------------------------------------------------------------------------------------


def test_sync_matches_within_tolerance_in_any_arrival_order():
    sync = StampSynchronizer(["image", "camera_info", "depth"], tolerance_ns=5 * MS, queue_size=10)
    assert sync.add("camera_info", 100 * MS, "info0") is None
    assert sync.add("image", 102 * MS, "image0") is None
    assert sync.add("depth", 98 * MS, "depth0") == {"image": "image0", "camera_info": "info0", "depth": "depth0"}
    assert sync.dropped == 0


def test_sync_rejects_partners_beyond_tolerance():
    sync = StampSynchronizer(["image", "camera_info"], tolerance_ns=5 * MS, queue_size=10)
    assert sync.add("image", 100 * MS, "image") is None
    assert sync.add("camera_info", 106 * MS, "late info") is None
    assert sync.add("camera_info", 104 * MS, "info") == {"image": "image", "camera_info": "info"}


def test_sync_takes_the_newest_match_and_counts_older_images_dropped():
    sync = StampSynchronizer(["image", "camera_info"], tolerance_ns=0, queue_size=10)
    for stamp in (1, 2, 3):
        assert sync.add("image", stamp * MS, f"image{stamp}") is None
    assert sync.add("camera_info", 3 * MS, "info3") == {"image": "image3", "camera_info": "info3"}
    assert sync.dropped == 2
    # consumed and older entries are gone: a late camera_info for stamp 2 matches nothing
    assert sync.add("camera_info", 2 * MS, "info2") is None


def test_sync_queue_overflow_counts_drops():
    sync = StampSynchronizer(["image", "camera_info"], tolerance_ns=0, queue_size=3)
    for stamp in range(5):
        sync.add("image", stamp * MS, stamp)
    assert sync.dropped == 2
    assert sync.add("camera_info", 4 * MS, "info") == {"image": 4, "camera_info": "info"}
    assert sync.dropped == 4  # images 2 and 3 were older than the match


def test_sync_rejects_bad_settings():
    with pytest.raises(ValueError, match="tolerance_ns"):
        StampSynchronizer(["image"], tolerance_ns=-1, queue_size=3)
    with pytest.raises(ValueError, match="at least one stream"):
        StampSynchronizer([], tolerance_ns=0, queue_size=3)


# --- LatestItemWorker -----------------------------------------------------------------------------------------


def test_worker_processes_the_latest_item_and_counts_replaced_ones():
    release = threading.Event()
    seen, errors = [], []

    def process(item):
        seen.append(item)
        if item == "first":
            release.wait(5)

    worker = LatestItemWorker(process, errors.append)
    worker.submit("first")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    for item in ("a", "b", "c"):  # submitted while "first" runs: only "c" survives
        worker.submit(item)
    release.set()
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.stop(5)
    assert seen == ["first", "c"] and worker.dropped == 2 and errors == []


def test_worker_survives_exceptions():
    errors, seen = [], []

    def process(item):
        if item == "bad":
            raise RuntimeError("boom")
        seen.append(item)

    worker = LatestItemWorker(process, errors.append)
    worker.submit("bad")
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.submit("good")
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.stop(5)
    assert [str(e) for e in errors] == ["boom"] and seen == ["good"]


# --- parameters -----------------------------------------------------------------------------------------------


def defaults(**overrides):
    return {spec.name: spec.plain_default for spec in PARAMETERS} | overrides


def test_default_parameters_are_valid_and_map_to_the_pipeline():
    settings = settings_from_parameters(defaults(seed=-1, threshold=-0.9, full_frame=True))
    assert settings.model is None and settings.pipeline.seed is None and settings.pipeline.threshold == -0.9
    assert settings.pipeline.full_frame and settings.outputs.full_frame
    assert settings_from_parameters(defaults()).pipeline.threshold is None


def test_every_parameter_has_a_description_and_ranged_numbers():
    for spec in PARAMETERS:
        descriptor = parameter_descriptor(spec)
        assert descriptor.description.startswith(spec.help), spec.name
        if spec.kind is float:
            assert descriptor.floating_point_range, spec.name
        if spec.kind is int:
            assert descriptor.integer_range or descriptor.floating_point_range, spec.name


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"steps2": 0}, "parameter 'steps2': 0 is outside [1, 1000]"),
        ({"sampler1": "euler"}, "parameter 'sampler1': 'euler' is not one of"),
        ({"device": "gpu"}, "parameter 'device'"),
        ({"uncertainty_samples": 1}, "uncertainty_samples must be 0 (off) or >= 2"),
        ({"publish_uncertainty": True}, "'uncertainty_samples' is below 2"),
        ({"reference_depth": "sensor"}, "'use_depth' is false"),
        ({"max_rate_hz": "fast"}, "parameter 'max_rate_hz': expected float"),
        ({"input_reliability": "sometimes"}, "parameter 'input_reliability'"),
    ],
)
def test_invalid_parameters_are_refused_with_a_reason(overrides, reason):
    with pytest.raises(ValueError) as error:
        settings_from_parameters(defaults(**overrides))
    assert reason in str(error.value)


# --- throttle and stats ---------------------------------------------------------------------------------------


def test_throttle_says_each_text_once_per_period_and_counts_the_rest():
    throttle = MessageThrottle(period_s=0.2)
    assert throttle.admit("bad encoding") == 0
    assert throttle.admit("bad encoding") is None
    assert throttle.admit("zero K") == 0
    time.sleep(0.25)
    assert throttle.admit("bad encoding") == 1


def test_stats_summary():
    stats = NodeStats(window=10)
    stats.count("bad_input")
    for latency in range(1, 21):
        stats.record_frame(float(latency), {"pipeline": 100.0, "publish": 2.0})
    summary = stats.summary()
    assert summary["published"] == 20 and summary["bad_input"] == 1
    assert summary["latency_p50_ms"] == pytest.approx(15.5)  # the window keeps the last 10 (11..20)
    assert summary["pipeline_ms"] == 100.0 and summary["publish_ms"] == 2.0 and summary["rate_hz"] > 0
