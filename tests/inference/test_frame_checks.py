"""The shared frame validation: implausible intrinsics and sensor depths are refused or ignored, by name."""

import numpy as np
import pytest

from rgbd_fusion_core.inference.frame_checks import check_frame, check_intrinsics, sensor_depth_metres
from rgbd_fusion_core.inference.pipeline_io import Frame

K = np.array([[300.0, 0, 160.0], [0, 300.0, 120.0], [0, 0, 1]])
RGB = np.zeros((240, 320, 3), np.uint8)


def with_entry(entry, value):
    changed = K.copy()
    changed[entry] = value
    return changed


@pytest.mark.parametrize(
    "entry, value, problem",
    [
        ((0, 2), np.nan, "cx is nan"),  # was reported as "invalid focal lengths fx=..., fy=..."
        ((1, 2), np.inf, "cy is inf"),
        ((0, 1), np.nan, "skew is nan"),
        ((0, 0), 1e30, r"fx=1e\+30 px is implausible \(more than 1e\+06 px\)"),
        ((1, 1), 0.0, "focal lengths must be positive"),
        ((0, 0), 1e5, "fx=100000 px is implausible for a 320x240 image"),
        ((1, 1), 1.0, "fy=1 px is implausible for a 320x240 image"),
        ((0, 2), -200.0, "cx=-200 px lies far outside the 320x240 image"),
    ],
)
def test_implausible_intrinsics_are_refused_naming_the_entry(entry, value, problem):
    with pytest.raises(ValueError, match=f"frame: K: {problem}"):
        check_frame(Frame(RGB, with_entry(entry, value)))


def test_plausible_intrinsics_pass_and_absolute_limits_hold_without_a_size():
    check_frame(Frame(RGB, K))
    check_frame(Frame(RGB, with_entry((0, 0), 20.0)))  # a very wide lens: ~165 deg
    check_frame(Frame(RGB, with_entry((0, 2), 330.0)))  # principal point just off the image (a shifted crop)
    np.testing.assert_array_equal(check_intrinsics(with_entry((0, 0), 1e5)), with_entry((0, 0), 1e5))
    with pytest.raises(ValueError, match="fx=2e\\+06 px is implausible"):
        check_intrinsics(with_entry((0, 0), 2e6))


def test_sensor_depth_outside_the_plausible_range_is_no_depth():
    millimetres = np.array([[0, 8, 49, 50, 1500, 20000, 20001, 65534, 65535]], np.uint16)
    np.testing.assert_allclose(
        sensor_depth_metres(millimetres), [[np.nan, np.nan, np.nan, 0.05, 1.5, 20.0, np.nan, np.nan, np.nan]]
    )
    metres = np.array([[1e-30, -2.0, 0.01, 2.0, 65.535, 1e30, np.inf, np.nan]], np.float32)
    np.testing.assert_array_equal(sensor_depth_metres(metres), [[np.nan] * 3 + [2.0] + [np.nan] * 4])
    np.testing.assert_allclose(sensor_depth_metres(np.float32([[30.0]]), max_m=50.0), [[30.0]])  # configurable


@pytest.mark.parametrize(
    "depth",
    [np.full((240, 320), 65535, np.uint16), np.full((240, 320), 1e-30, np.float32), np.full((240, 320), 1e3)],
    ids=["65535mm", "1e-30m", "1km"],
)
def test_frame_with_only_implausible_sensor_depth_is_refused(depth):
    with pytest.raises(ValueError, match="sensor depth has no valid pixels .*65535 mm or outside 0.05-20 m"):
        check_frame(Frame(RGB, K, sensor_depth=depth))
