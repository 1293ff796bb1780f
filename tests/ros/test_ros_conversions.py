"""Message <-> array conversions and message building, with rosbags classes and (where installed) rclpy classes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from rgbd_fusion_core.inference.pipeline_io import PipelineResult
from rgbd_fusion_ros.conversions import (
    camera_info_to_K,
    check_messages,
    compressed_image_to_rgb,
    depth_to_metres,
    frame_from_messages,
    image_to_array,
    image_to_rgb,
    mask_to_array,
    pointcloud_to_arrays,
)
from rgbd_fusion_ros.messages import (
    OUTPUT_TOPICS,
    OutputOptions,
    build_outputs,
    camera_info_message,
    copy_header,
    depth_image_message,
    image_message,
    make_header,
    pointcloud_message,
    rosbags_types,
)

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
BAG_TYPES = rosbags_types(TYPESTORE)
RNG = np.random.default_rng(7)

SAMPLE_PIXELS = {
    "rgb8": RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "rgba8": RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "bgra8": RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (5, 7), dtype=np.uint8),
    "8UC1": RNG.integers(0, 256, (5, 7), dtype=np.uint8),
    "16UC1": RNG.integers(0, 65536, (5, 7), dtype=np.uint16),
    "32FC1": RNG.uniform(0.3, 9.0, (5, 7)).astype(np.float32),
}


def header(types=BAG_TYPES):
    return make_header(types, 1712345678, 123456789, "camera_color_optical_frame")


def raw_image(encoding, pixels, pad=0, big_endian=False):
    """An Image built by hand (independent of image_message): rows padded with ``pad`` bytes, chosen byte order."""
    ordered = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    rows = np.ascontiguousarray(ordered).view(np.uint8).reshape(pixels.shape[0], ordered.strides[0])
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return BAG_TYPES.Image(
        header=header(),
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=padded.shape[1],
        data=padded.reshape(-1).copy(),
    )


def sample_result(with_optional=True) -> PipelineResult:
    depth = np.full((256, 256), np.nan, np.float32)
    depth[60:200, 90:170] = RNG.uniform(1.8, 2.4, (140, 80))
    K_crop = np.array([[300.0, 0, 128.5], [0, 301.0, 127.5], [0, 0, 1]])
    valid = np.isfinite(depth)
    v, u = np.nonzero(valid)
    z = depth[valid]
    points = np.stack([(u - K_crop[0, 2]) * z / K_crop[0, 0], (v - K_crop[1, 2]) * z / K_crop[1, 1], z], axis=1)
    rgb_crop = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return PipelineResult(
        depth=depth,
        K_crop=K_crop,
        crop_box=(100, 40, 400),
        rgb_crop=rgb_crop,
        depth_low_res=depth[::4, ::4].copy(),
        K_low_res=K_crop / np.array([[4], [4], [1]]),
        points=points.astype(np.float32),
        colors=rgb_crop[valid],
        z_ref=2.1,
        z_ref_source="height_prior",
        nfe=10,
        depth_full=np.full((480, 640), np.nan, np.float32) if with_optional else None,
        uncertainty=np.full((256, 256), 0.01, np.float32) if with_optional else None,
    )


# --- image conversions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(SAMPLE_PIXELS))
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("big_endian", [False, True])
def test_image_to_array_reads_every_encoding_with_padding_and_byte_order(encoding, pad, big_endian):
    pixels = SAMPLE_PIXELS[encoding]
    decoded = image_to_array(raw_image(encoding, pixels, pad, big_endian))
    assert decoded.dtype == pixels.dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, pixels)
    assert decoded.flags.c_contiguous and decoded.flags.writeable


@pytest.mark.parametrize("encoding", list(SAMPLE_PIXELS))
def test_image_message_round_trip(encoding):
    pixels = SAMPLE_PIXELS[encoding]
    msg = image_message(BAG_TYPES, header(), pixels, encoding)
    assert msg.step == pixels.shape[1] * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1)
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_color_order_and_alpha_mask():
    rgb = SAMPLE_PIXELS["rgb8"]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    alpha = (RNG.random(rgb.shape[:2]) > 0.5).astype(np.uint8) * 255
    for encoding, pixels in [
        ("rgb8", rgb),
        ("bgr8", bgr),
        ("rgba8", np.dstack([rgb, alpha])),
        ("bgra8", np.dstack([bgr, alpha])),
    ]:
        decoded, decoded_alpha = image_to_rgb(raw_image(encoding, pixels, pad=2))
        np.testing.assert_array_equal(decoded, rgb, err_msg=encoding)
        if encoding.endswith("a8"):
            np.testing.assert_array_equal(decoded_alpha, alpha)
        else:
            assert decoded_alpha is None


def test_mask_and_depth_readers():
    mask = mask_to_array(raw_image("mono8", np.array([[0, 1, 255]], np.uint8)), shape=(1, 3))
    np.testing.assert_array_equal(mask, [[False, True, True]])
    # 0 and 65535 mm (the 16-bit "invalid" marker) and depths outside 0.05-20 m are "no depth", never used
    millimetres = np.array([[0, 1500, 65535, 20000, 20001, 49, 50]], np.uint16)
    expected_mm = [[np.nan, 1.5, np.nan, 20.0, np.nan, np.nan, 0.05]]
    np.testing.assert_allclose(depth_to_metres(raw_image("16UC1", millimetres)), expected_mm, rtol=1e-6)
    metres = np.array([[np.nan, 2.0, -1.0, np.inf, 0.0, 1e-30, 1e30, 65.535]], np.float32)
    expected_m = [[np.nan, 2.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]]
    np.testing.assert_array_equal(depth_to_metres(raw_image("32FC1", metres)), expected_m)
    with pytest.raises(ValueError, match="no valid pixel .*65535 mm or outside 0.05-20 m"):
        depth_to_metres(raw_image("16UC1", np.full((2, 2), 65535, np.uint16)))


@pytest.mark.parametrize(
    "msg, reader, problem",
    [
        (raw_image("yuv422", SAMPLE_PIXELS["mono8"]), image_to_array, "unsupported image encoding 'yuv422'"),
        (raw_image("mono8", SAMPLE_PIXELS["mono8"]), image_to_rgb, "unsupported image encoding 'mono8'"),
        (raw_image("rgb8", SAMPLE_PIXELS["rgb8"]), depth_to_metres, "unsupported image encoding 'rgb8'"),
        (raw_image("rgb8", np.zeros((0, 4, 3), np.uint8)), image_to_rgb, "empty image"),
        (raw_image("32FC1", np.full((3, 3), np.nan, np.float32)), depth_to_metres, "no valid pixel"),
        (raw_image("16UC1", np.zeros((3, 3), np.uint16)), depth_to_metres, "no valid pixel"),
        (raw_image("mono8", SAMPLE_PIXELS["mono8"]), lambda m: mask_to_array(m, (6, 7)), "mask is 7x5"),
        (raw_image("32FC1", SAMPLE_PIXELS["32FC1"]), lambda m: depth_to_metres(m, (5, 8)), "depth is 7x5"),
    ],
)
def test_bad_images_raise_naming_the_problem(msg, reader, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        reader(msg)


def test_step_and_size_mismatches_raise():
    msg = raw_image("rgb8", SAMPLE_PIXELS["rgb8"])
    small_step = dataclasses.replace(msg, step=msg.step - 1)
    with pytest.raises(ValueError, match="smaller than width"):
        image_to_rgb(small_step)
    short_data = dataclasses.replace(msg, data=msg.data[:-1])
    with pytest.raises(ValueError, match="expected step\\*height"):
        image_to_rgb(short_data)


# --- camera info ----------------------------------------------------------------------------------------------


def test_camera_info_message_and_reader():
    K = np.array([[525.0, 0, 319.5], [0, 526.0, 239.5], [0, 0, 1]])
    msg = camera_info_message(BAG_TYPES, header(), K, 640, 480)
    assert (msg.width, msg.height, msg.distortion_model) == (640, 480, "plumb_bob")
    np.testing.assert_array_equal(msg.d, np.zeros(5))
    np.testing.assert_array_equal(np.reshape(msg.r, (3, 3)), np.eye(3))
    np.testing.assert_array_equal(np.reshape(msg.p, (3, 4)), np.hstack([K, np.zeros((3, 1))]))
    np.testing.assert_array_equal(camera_info_to_K(msg, shape=(480, 640)), K)
    with pytest.raises(ValueError, match="camera_info is for 640x480 but the image is 320x240"):
        camera_info_to_K(msg, shape=(240, 320))
    with pytest.raises(ValueError, match="all zeros"):
        camera_info_to_K(camera_info_message(BAG_TYPES, header(), np.zeros((3, 3)), 640, 480))
    with pytest.raises(ValueError, match="focal"):
        camera_info_to_K(camera_info_message(BAG_TYPES, header(), np.diag([-1.0, 1.0, 1.0]), 640, 480))


@pytest.mark.parametrize(
    "entry, value, problem",
    [
        ((0, 2), np.nan, "cx is nan"),
        ((1, 2), np.inf, "cy is inf"),
        ((0, 0), np.nan, "fx is nan"),
        ((1, 1), -5.0, "focal lengths must be positive"),
        ((0, 0), 1e30, "fx=1e\\+30 px is implausible"),
        ((1, 1), 2e6, "fy=2e\\+06 px is implausible"),
        ((0, 0), 100_000.0, "fx=100000 px is implausible for a 640x480 image"),
        ((0, 0), 5.0, "fx=5 px is implausible for a 640x480 image"),
        ((0, 2), 5000.0, "cx=5000 px lies far outside the 640x480 image"),
        ((1, 2), -400.0, "cy=-400 px lies far outside the 640x480 image"),
    ],
)
def test_implausible_intrinsics_are_refused_naming_the_entry(entry, value, problem):
    K = np.array([[525.0, 0, 319.5], [0, 526.0, 239.5], [0, 0, 1]])
    K[entry] = value
    msg = camera_info_message(BAG_TYPES, header(), K, 640, 480)
    with pytest.raises(ValueError, match=f"camera_info K: {problem}"):
        camera_info_to_K(msg, shape=(480, 640))
    with pytest.raises(ValueError, match=f"camera_info: camera_info K: {problem}"):
        check_messages(raw_image("rgb8", np.zeros((480, 640, 3), np.uint8)), msg)


def test_cheap_message_checks_catch_what_decoding_would():
    """check_messages (run by the node before a frame may take the worker's slot) refuses what decoding would."""
    image = raw_image("rgb8", SAMPLE_PIXELS["rgb8"])  # 7x5 (width x height)
    info = camera_info_message(BAG_TYPES, header(), np.array([[8.0, 0, 3.0], [0, 8.0, 2.0], [0, 0, 1]]), 7, 5)
    check_messages(image, info, raw_image("mono8", np.zeros((5, 7), np.uint8)))
    cases = [
        ((dataclasses.replace(image, encoding="x" * 10_000), info), "image: unsupported image encoding 'xxx"),
        ((dataclasses.replace(image, step=image.step - 1), info), "image: image step"),
        ((dataclasses.replace(image, data=image.data[:-1]), info), "image: image data has"),
        ((image, info, raw_image("mono8", np.zeros((3, 3), np.uint8))), "mask: mask is 3x3 but the image is 7x5"),
        ((image, info, None, raw_image("rgb8", SAMPLE_PIXELS["rgb8"])), "depth: unsupported image encoding"),
        ((image, info, None, raw_image("16UC1", np.full((5, 7), 65535, np.uint16))), "depth: .* has no valid pixel"),
    ]
    for arguments, problem in cases:
        with pytest.raises(ValueError, match=problem) as raised:
            check_messages(*arguments)
        assert len(str(raised.value)) < 300  # a 10 kB encoding string is cut, not repeated


# --- compressed images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, ext, tolerance", [("rgb8; png compressed bgr8", ".png", 0), ("jpeg", ".jpg", 40)])
def test_compressed_image_decodes(fmt, ext, tolerance):
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 0], rgb[8:24, 10:30, 1] = 200, 120
    ok, encoded = cv2.imencode(ext, rgb[..., ::-1])
    assert ok
    msg = BAG_TYPES.CompressedImage(header=header(), format=fmt, data=encoded.reshape(-1))
    decoded, alpha = compressed_image_to_rgb(msg)
    assert decoded.shape == rgb.shape and alpha is None
    assert np.abs(decoded.astype(int) - rgb).max() <= tolerance


def test_compressed_image_errors():
    with pytest.raises(ValueError, match="unsupported compressed image format"):
        compressed_image_to_rgb(
            BAG_TYPES.CompressedImage(header=header(), format="16UC1; compressedDepth png", data=np.zeros(4, np.uint8))
        )
    with pytest.raises(ValueError, match="could not decode"):
        compressed_image_to_rgb(
            BAG_TYPES.CompressedImage(header=header(), format="png", data=np.arange(50, dtype=np.uint8))
        )


# --- depth images and point clouds ----------------------------------------------------------------------------


def test_depth_image_encodings():
    depth = np.array([[np.nan, 1.2344, 70.0, 0.5]], np.float32)
    as_float = depth_image_message(BAG_TYPES, header(), depth, "32FC1")
    assert as_float.encoding == "32FC1"
    np.testing.assert_array_equal(image_to_array(as_float), depth)
    as_mm = depth_image_message(BAG_TYPES, header(), depth, "16UC1")
    assert as_mm.encoding == "16UC1"
    np.testing.assert_array_equal(image_to_array(as_mm), [[0, 1234, 0, 500]])
    with pytest.raises(ValueError, match="depth encoding"):
        depth_image_message(BAG_TYPES, header(), depth, "16SC1")


def test_pointcloud_bytes_decode_to_same_points_and_colors():
    points = RNG.normal(0, 1, (1000, 3)).astype(np.float32)
    colors = RNG.integers(0, 256, (1000, 3), dtype=np.uint8)
    msg = pointcloud_message(BAG_TYPES, header(), points, colors)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("rgb", 12, 7, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (1, 1000, 16, 16000, True)
    assert len(msg.data) == 16000
    # Independent decoding of the layout: a structured dtype with the packed colour read as uint32.
    records = np.frombuffer(
        msg.data.tobytes(), dtype=np.dtype({"names": list("xyz") + ["rgb"], "formats": ["<f4"] * 3 + ["<u4"]})
    )
    np.testing.assert_array_equal(np.stack([records[a] for a in "xyz"], axis=1), points)
    np.testing.assert_array_equal(records["rgb"] >> 24, 0)
    np.testing.assert_array_equal((records["rgb"] >> 16) & 255, colors[:, 0])
    decoded_points, decoded_colors = pointcloud_to_arrays(msg)
    np.testing.assert_array_equal(decoded_points, points)
    np.testing.assert_array_equal(decoded_colors, colors)
    points[3, 1] = np.nan
    assert pointcloud_message(BAG_TYPES, header(), points, colors).is_dense is False


def test_empty_pointcloud():
    msg = pointcloud_message(BAG_TYPES, header(), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    assert (msg.width, msg.row_step, len(msg.data), msg.is_dense) == (0, 0, 0, True)
    points, colors = pointcloud_to_arrays(msg)
    assert points.shape == (0, 3) and colors.shape == (0, 3)


# --- build_outputs --------------------------------------------------------------------------------------------


def test_build_outputs_names_follow_options_wanted_and_result():
    result = sample_result()
    all_options = OutputOptions(full_frame=True, low_res=True, uncertainty=True)
    assert set(build_outputs(BAG_TYPES, result, header(), all_options)) == set(OUTPUT_TOPICS)
    assert set(build_outputs(BAG_TYPES, result, header())) == {"depth/image", "depth/camera_info", "points"}
    assert set(build_outputs(BAG_TYPES, result, header(), all_options, wanted={"points", "depth/low_res"})) == {
        "points",
        "depth/low_res",
    }
    bare = build_outputs(BAG_TYPES, sample_result(with_optional=False), header(), all_options)
    assert set(bare) == {"depth/image", "depth/camera_info", "depth/low_res", "points"}


def test_build_outputs_contents():
    result = sample_result()
    stamp_header = copy_header(BAG_TYPES, header(), frame_id="override_frame")
    options = OutputOptions(depth_encoding="16UC1", low_res=True, uncertainty=True)
    messages = build_outputs(BAG_TYPES, result, stamp_header, options)
    for msg in messages.values():
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
            1712345678,
            123456789,
            "override_frame",
        )
    depth = messages["depth/image"]
    assert (depth.encoding, depth.width, depth.height) == ("16UC1", 256, 256)
    np.testing.assert_array_equal(image_to_array(depth) == 0, np.isnan(result.depth))
    assert messages["depth/uncertainty"].encoding == "32FC1"
    assert messages["depth/low_res"].width == 64
    np.testing.assert_array_equal(camera_info_to_K(messages["depth/camera_info"], (256, 256)), result.K_crop)
    assert messages["points"].width == int(np.isfinite(result.depth).sum())


# --- rclpy and rosbags build the same messages ----------------------------------------------------------------


def assert_same_message(ours, theirs, path="msg"):
    """Field-by-field equality of two rosbags messages (arrays compared by value)."""
    assert type(ours).__msgtype__ == type(theirs).__msgtype__, path
    for field in dataclasses.fields(ours):
        a, b = getattr(ours, field.name), getattr(theirs, field.name)
        where = f"{path}.{field.name}"
        if dataclasses.is_dataclass(a):
            assert_same_message(a, b, where)
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (item_a, item_b) in enumerate(zip(a, b)):
                assert_same_message(item_a, item_b, f"{where}[{i}]")
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            assert a == b, where


def test_rclpy_and_rosbags_adapters_build_identical_messages():
    pytest.importorskip("sensor_msgs.msg", reason="rclpy message packages are not installed")
    from rclpy.serialization import deserialize_message, serialize_message

    from rgbd_fusion_ros.messages import rclpy_types

    ros_types = rclpy_types()
    result = sample_result()
    options = OutputOptions(full_frame=True, low_res=True, uncertainty=True)
    ros_messages = build_outputs(ros_types, result, header(ros_types), options)
    bag_messages = build_outputs(BAG_TYPES, result, header(), options)
    assert set(ros_messages) == set(bag_messages) == set(OUTPUT_TOPICS)
    for name, ros_msg in ros_messages.items():
        ros_type = OUTPUT_TOPICS[name]
        from_rclpy = TYPESTORE.deserialize_cdr(serialize_message(ros_msg), ros_type)
        assert_same_message(from_rclpy, bag_messages[name], name)
        # and the other way: rclpy reads what rosbags serialised
        back = deserialize_message(bytes(TYPESTORE.serialize_cdr(bag_messages[name], ros_type)), type(ros_msg))
        assert back == ros_msg, name


def test_readers_accept_rclpy_messages():
    pytest.importorskip("sensor_msgs.msg", reason="rclpy message packages are not installed")
    from rgbd_fusion_ros.messages import rclpy_types

    ros_types = rclpy_types()
    rgb = SAMPLE_PIXELS["rgba8"]
    decoded, alpha = image_to_rgb(image_message(ros_types, header(ros_types), rgb, "rgba8"))
    np.testing.assert_array_equal(decoded, rgb[..., :3])
    np.testing.assert_array_equal(alpha, rgb[..., 3])
    result = sample_result()
    cloud = pointcloud_message(ros_types, header(ros_types), result.points, result.colors)
    points, colors = pointcloud_to_arrays(cloud)
    np.testing.assert_array_equal(points, result.points)
    np.testing.assert_array_equal(colors, result.colors)
    info = camera_info_message(ros_types, header(ros_types), result.K_crop, 256, 256)
    np.testing.assert_array_equal(camera_info_to_K(info), result.K_crop)


def test_cv_bridge_reads_our_images_identically():
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge (ROS 2) is not installable here (no PyPI wheel)")
    from rgbd_fusion_ros.messages import rclpy_types

    ros_types = rclpy_types()
    bridge = cv_bridge.CvBridge()
    for encoding, pixels in SAMPLE_PIXELS.items():
        msg = image_message(ros_types, header(ros_types), pixels, encoding)
        np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), image_to_array(msg), err_msg=encoding)


def test_sensor_msgs_py_reads_our_clouds_identically():
    point_cloud2 = pytest.importorskip(
        "sensor_msgs_py.point_cloud2", reason="sensor_msgs_py is not installable here (no PyPI wheel)"
    )
    from rgbd_fusion_ros.messages import rclpy_types

    ros_types = rclpy_types()
    result = sample_result()
    cloud = pointcloud_message(ros_types, header(ros_types), result.points, result.colors)
    read = point_cloud2.read_points_numpy(cloud, field_names=("x", "y", "z"))
    np.testing.assert_array_equal(read, result.points)


def test_modules_do_not_import_ros():
    code = (
        "import sys, rgbd_fusion_ros.messages, rgbd_fusion_ros.conversions; "
        "bad = [m for m in ('rclpy', 'sensor_msgs', 'std_msgs') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- matched messages -> Frame ------------------------------------------------------------------------------


def test_frame_from_messages():
    K = np.array([[50.0, 0, 3.5], [0, 50.0, 2.5], [0, 0, 1]])
    info = camera_info_message(BAG_TYPES, header(), K, 7, 5)
    rgb = SAMPLE_PIXELS["rgb8"]
    alpha = np.zeros((5, 7), np.uint8)
    alpha[1:4, 2:5] = 255
    frame = frame_from_messages(raw_image("rgba8", np.dstack([rgb, alpha])), info)
    np.testing.assert_array_equal(frame.rgb, rgb)
    np.testing.assert_array_equal(frame.K, K)
    np.testing.assert_array_equal(frame.mask, alpha != 0)
    assert frame.sensor_depth is None
    opaque = frame_from_messages(raw_image("rgba8", np.dstack([rgb, np.full((5, 7), 255, np.uint8)])), info)
    assert opaque.mask is None  # a constant alpha is no mask
    mask = np.eye(5, 7, dtype=np.uint8)
    depth = np.full((5, 7), 1500, np.uint16)
    frame = frame_from_messages(
        raw_image("bgr8", rgb[..., ::-1]), info, raw_image("mono8", mask), raw_image("16UC1", depth)
    )
    np.testing.assert_array_equal(frame.rgb, rgb)
    np.testing.assert_array_equal(frame.mask, mask != 0)
    np.testing.assert_allclose(frame.sensor_depth, 1.5)
    ok, encoded = cv2.imencode(".png", rgb[..., ::-1])
    compressed = BAG_TYPES.CompressedImage(header=header(), format="png", data=encoded.reshape(-1))
    np.testing.assert_array_equal(frame_from_messages(compressed, info).rgb, rgb)


@pytest.mark.parametrize(
    "which, problem",
    [
        ("image", "image: unsupported image encoding"),
        ("camera_info", "camera_info: camera_info K is all zeros"),
        ("mask", "mask: mask is 3x2 but the image is 7x5"),
        ("depth", "depth: depth image (32FC1) has no valid pixel"),
    ],
)
def test_frame_from_messages_names_the_bad_message(which, problem):
    inputs = {
        "image": raw_image("rgb8", SAMPLE_PIXELS["rgb8"]),
        "camera_info": camera_info_message(BAG_TYPES, header(), np.diag([50.0, 50.0, 1.0]), 7, 5),
        "mask": raw_image("mono8", np.ones((5, 7), np.uint8)),
        "depth": raw_image("32FC1", np.ones((5, 7), np.float32)),
    }
    inputs[which] = {
        "image": raw_image("yuv422", SAMPLE_PIXELS["mono8"]),
        "camera_info": camera_info_message(BAG_TYPES, header(), np.zeros((3, 3)), 7, 5),
        "mask": raw_image("mono8", np.ones((2, 3), np.uint8)),
        "depth": raw_image("32FC1", np.full((5, 7), np.nan, np.float32)),
    }[which]
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        frame_from_messages(**inputs)
