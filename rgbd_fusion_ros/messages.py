"""numpy arrays and ``PipelineResult`` -> sensor_msgs messages, for the node (rclpy) and the bag tool (rosbags).

The message classes come in through a small ``MessageTypes`` adapter, so the same code builds rclpy messages
(``rclpy_types()``, needs a ROS installation) and rosbags dataclasses (``rosbags_types(typestore)``, pure
Python). No ROS package is imported at module level.

Conventions: REP 118 depth (32FC1 metres, NaN = no depth; or 16UC1 millimetres, 0 = no depth); REP 103 camera
optical frame for points (x right, y down, z forward); every message carries the header it is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import PipelineResult
from rgbd_fusion_core.io.depth_units import metres_to_millimetres

HOST_IS_BIGENDIAN = sys.byteorder == "big"
DEPTH_OUTPUT_ENCODINGS = ("32FC1", "16UC1")

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"

# Every output of one frame: relative topic name -> ROS message type.
OUTPUT_TOPICS: dict[str, str] = {
    "depth/image": IMAGE_TYPE,
    "depth/camera_info": CAMERA_INFO_TYPE,
    "depth/image_full": IMAGE_TYPE,
    "depth/low_res": IMAGE_TYPE,
    "points": POINT_CLOUD_TYPE,
    "depth/uncertainty": IMAGE_TYPE,
}

POINT_STEP = 16  # x, y, z, rgb: four float32


@dataclass(frozen=True)
class MessageTypes:
    """The message classes to build with, and how their array fields want their values.

    bytes_field(b) -> value for a ``uint8[]`` field (rclpy: bytes, fast; rosbags: numpy uint8 array).
    float64_field(values) -> value for a ``float64[]`` / ``float64[N]`` field (rclpy: list; rosbags: numpy).
    """

    Image: type
    CameraInfo: type
    PointCloud2: type
    PointField: type
    Header: type
    Time: type
    RegionOfInterest: type
    CompressedImage: type
    bytes_field: Callable[[bytes], Any]
    float64_field: Callable[[Sequence[float]], Any]

    def message_class(self, ros_type: str) -> type:
        """'sensor_msgs/msg/Image' -> the adapter's Image class."""
        return getattr(self, ros_type.rsplit("/", 1)[-1])


def rclpy_types() -> MessageTypes:
    """The adapter for rclpy message classes (imports sensor_msgs, std_msgs, builtin_interfaces here)."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest
    from std_msgs.msg import Header

    return MessageTypes(
        Image=Image,
        CameraInfo=CameraInfo,
        PointCloud2=PointCloud2,
        PointField=PointField,
        Header=Header,
        Time=Time,
        RegionOfInterest=RegionOfInterest,
        CompressedImage=CompressedImage,
        bytes_field=bytes,
        float64_field=lambda values: [float(v) for v in values],
    )


def rosbags_types(typestore) -> MessageTypes:
    """The adapter for a rosbags typestore, e.g. ``get_typestore(Stores.ROS2_KILTED)``."""
    types = typestore.types
    return MessageTypes(
        Image=types[IMAGE_TYPE],
        CameraInfo=types[CAMERA_INFO_TYPE],
        PointCloud2=types[POINT_CLOUD_TYPE],
        PointField=types["sensor_msgs/msg/PointField"],
        Header=types["std_msgs/msg/Header"],
        Time=types["builtin_interfaces/msg/Time"],
        RegionOfInterest=types["sensor_msgs/msg/RegionOfInterest"],
        CompressedImage=types["sensor_msgs/msg/CompressedImage"],
        bytes_field=lambda b: np.frombuffer(b, dtype=np.uint8),
        float64_field=lambda values: np.asarray(values, dtype=np.float64),
    )


def make_header(types: MessageTypes, sec: int, nanosec: int, frame_id: str):
    """A std_msgs/Header with the given stamp and frame."""
    return types.Header(stamp=types.Time(sec=int(sec), nanosec=int(nanosec)), frame_id=frame_id)


def copy_header(types: MessageTypes, header, frame_id: str | None = None):
    """A copy of ``header`` (from either adapter) as the adapter's Header; ``frame_id`` overrides when not empty."""
    return make_header(types, header.stamp.sec, header.stamp.nanosec, frame_id or header.frame_id)


def image_message(types: MessageTypes, header, pixels: np.ndarray, encoding: str):
    """(H, W) or (H, W, C) array -> sensor_msgs/Image, rows unpadded, host byte order.

    The array's dtype and channels must match ``encoding`` (e.g. uint8 x3 for rgb8, float32 for 32FC1).
    """
    height, width = pixels.shape[:2]
    row_bytes = pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1) * width
    return types.Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(HOST_IS_BIGENDIAN),
        step=row_bytes,
        data=types.bytes_field(np.ascontiguousarray(pixels).tobytes()),
    )


def depth_image_message(types: MessageTypes, header, depth_m: np.ndarray, encoding: str = "32FC1"):
    """(H, W) float metres, NaN = none -> REP 118 depth image.

    "32FC1": float32 metres, NaN where no depth. "16UC1": uint16 millimetres (rounded), 0 where no depth or
    beyond 65.535 m.
    """
    if encoding == "32FC1":
        return image_message(types, header, depth_m.astype(np.float32, copy=False), encoding)
    if encoding == "16UC1":
        return image_message(types, header, metres_to_millimetres(depth_m), encoding)
    raise ValueError(f"depth encoding must be one of {DEPTH_OUTPUT_ENCODINGS}, got {encoding!r}")


def camera_info_message(types: MessageTypes, header, K: np.ndarray, width: int, height: int):
    """Pinhole CameraInfo for a rectified image of size width x height with intrinsics K (3, 3) in pixels.

    Distortion plumb_bob with zero coefficients, R identity, P = [K | 0].
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    projection = np.zeros((3, 4))
    projection[:, :3] = K
    return types.CameraInfo(
        header=header,
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=types.float64_field(np.zeros(5)),
        k=types.float64_field(K.ravel()),
        r=types.float64_field(np.eye(3).ravel()),
        p=types.float64_field(projection.ravel()),
        binning_x=0,
        binning_y=0,
        roi=types.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def pointcloud_message(types: MessageTypes, header, points: np.ndarray, colors: np.ndarray):
    """(N, 3) float32 metres + (N, 3) uint8 RGB -> unorganised PointCloud2 (height 1) with x, y, z, rgb float32.

    'rgb' is the PCL/rviz packing: the float32 whose bits are the uint32 0x00RRGGBB. ``is_dense`` is True only
    when every coordinate is finite.
    """
    count = len(points)
    xyz = np.ascontiguousarray(points, dtype=np.float32)
    records = np.zeros((count, POINT_STEP), dtype=np.uint8)  # one point per row, host byte order
    records[:, :12] = xyz.view(np.uint8).reshape(count, 12)
    if HOST_IS_BIGENDIAN:
        records[:, 13:16] = colors  # 0x00RRGGBB stored as 00 RR GG BB
    else:
        records[:, 12:15] = colors[:, ::-1]  # stored as BB GG RR 00
    float32 = types.PointField.FLOAT32
    fields = [types.PointField(name=name, offset=4 * i, datatype=float32, count=1) for i, name in enumerate("xyz")]
    fields.append(types.PointField(name="rgb", offset=12, datatype=float32, count=1))
    return types.PointCloud2(
        header=header,
        height=1,
        width=count,
        fields=fields,
        is_bigendian=HOST_IS_BIGENDIAN,
        point_step=POINT_STEP,
        row_step=POINT_STEP * count,
        data=types.bytes_field(records.tobytes()),
        is_dense=bool(np.isfinite(xyz).all()),
    )


@dataclass(frozen=True)
class OutputOptions:
    """Which optional outputs to build and how.

    depth_encoding: "32FC1" (metres, NaN) or "16UC1" (millimetres, 0), for every depth image except the
    uncertainty (always 32FC1 metres). full_frame / low_res / uncertainty: build those optional outputs when
    the result has them.
    """

    depth_encoding: str = "32FC1"
    full_frame: bool = False
    low_res: bool = False
    uncertainty: bool = False

    def __post_init__(self):
        if self.depth_encoding not in DEPTH_OUTPUT_ENCODINGS:
            raise ValueError(f"depth_encoding must be one of {DEPTH_OUTPUT_ENCODINGS}, got {self.depth_encoding!r}")

    def enabled_outputs(self) -> tuple[str, ...]:
        """The relative topic names these options produce (a subset of ``OUTPUT_TOPICS``)."""
        optional = {
            "depth/image_full": self.full_frame,
            "depth/low_res": self.low_res,
            "depth/uncertainty": self.uncertainty,
        }
        return tuple(name for name in OUTPUT_TOPICS if optional.get(name, True))


def build_outputs(
    types: MessageTypes,
    result: PipelineResult,
    header,
    options: OutputOptions = OutputOptions(),
    wanted: Collection[str] | None = None,
) -> dict[str, Any]:
    """All output messages of one frame: relative topic name -> message, each with ``header``.

    Builds the names in ``options.enabled_outputs()`` that are also in ``wanted`` (None = all) and whose data
    the result holds (depth_full / uncertainty may be None).
    """
    names = [n for n in options.enabled_outputs() if wanted is None or n in wanted]
    encoding = options.depth_encoding
    builders = {
        "depth/image": lambda: depth_image_message(types, header, result.depth, encoding),
        "depth/camera_info": lambda: camera_info_message(
            types, header, result.K_crop, result.depth.shape[1], result.depth.shape[0]
        ),
        "depth/image_full": lambda: depth_image_message(types, header, result.depth_full, encoding),
        "depth/low_res": lambda: depth_image_message(types, header, result.depth_low_res, encoding),
        "points": lambda: pointcloud_message(types, header, result.points, result.colors),
        "depth/uncertainty": lambda: depth_image_message(types, header, result.uncertainty, "32FC1"),
    }
    available = {"depth/image_full": result.depth_full is not None, "depth/uncertainty": result.uncertainty is not None}
    return {name: builders[name]() for name in names if available.get(name, True)}
