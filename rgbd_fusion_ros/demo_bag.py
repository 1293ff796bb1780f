"""A small rosbag2 of synthetic camera frames (a person-like silhouette), for tests, benchmarks and trying the bag
tool without a recording. Written with ``rosbags``: no ROS installation needed.

Each frame: an image (rgb8 Image, or PNG CompressedImage) and a CameraInfo with the same header stamp, and
optionally a mono8 person mask and a 16UC1 depth image (millimetres). The silhouette (head, torso, legs) sways
sideways from frame to frame at a fixed distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

START_NS = 1_700_000_000 * 1_000_000_000
FRAME_ID = "camera_color_optical_frame"
PERSON_DISTANCE_M = 2.5


@dataclass(frozen=True)
class DemoTopics:
    image: str = "/camera/color/image_raw"
    compressed_image: str = "/camera/color/image_raw/compressed"
    camera_info: str = "/camera/color/camera_info"
    mask: str = "/camera/person_mask"
    depth: str = "/camera/depth/image_rect_raw"


TOPICS = DemoTopics()


def demo_intrinsics(width: int, height: int) -> np.ndarray:
    """K (3, 3) of the demo camera: about 60 degrees horizontal field of view, centred principal point."""
    focal = 0.87 * width
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def person_silhouette(width: int, height: int, offset_px: float) -> np.ndarray:
    """(H, W) bool mask of a standing figure (head disc, torso box, two legs) shifted ``offset_px`` sideways."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    centre = width / 2.0 + offset_px
    head = (cols - centre) ** 2 + (rows - 0.18 * height) ** 2 <= (0.07 * height) ** 2
    torso = (np.abs(cols - centre) <= 0.11 * height) & (rows >= 0.25 * height) & (rows <= 0.58 * height)
    legs = (np.abs(np.abs(cols - centre) - 0.055 * height) <= 0.04 * height) & (rows > 0.58 * height)
    legs &= rows <= 0.92 * height
    return head | torso | legs


def demo_frame(index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``index``: (rgb (H, W, 3) uint8, mask (H, W) bool, depth (H, W) uint16 mm, 0 off the person).

    The person is a flat cut-out at ``PERSON_DISTANCE_M``; good enough to exercise the plumbing, not the model.
    """
    mask = person_silhouette(width, height, offset_px=0.08 * width * np.sin(index * 0.7))
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[...] = (90 + (cols * 40 // width))[..., None].astype(np.uint8)  # grey gradient background
    shirt = rows < 0.58 * height
    rgb[mask & shirt] = (200, 60, 50)
    rgb[mask & ~shirt] = (40, 50, 120)
    rgb[mask & (rows < 0.25 * height)] = (225, 180, 150)
    depth = np.where(mask, round(PERSON_DISTANCE_M * 1000), 0).astype(np.uint16)
    return rgb, mask, depth


def write_demo_bag(
    path: str | Path,
    frames: int = 4,
    width: int = 64,
    height: int = 96,
    storage: str = "sqlite3",
    compressed: bool = False,
    with_mask: bool = False,
    with_depth: bool = False,
    missing_camera_info: tuple[int, ...] = (),
    corrupt_images: tuple[int, ...] = (),
    rate_hz: float = 10.0,
) -> DemoTopics:
    """Write the bag at ``path`` (must not exist); returns the topic names.

    To exercise error handling: missing_camera_info lists frames recorded without their CameraInfo,
    corrupt_images frames whose image message is recorded as bytes that do not deserialise.
    """
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    from rgbd_fusion_ros.bag_io import bag_typestore
    from rgbd_fusion_ros.messages import camera_info_message, image_message, make_header, rosbags_types

    typestore = bag_typestore()
    types = rosbags_types(typestore)
    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[storage]
    K = demo_intrinsics(width, height)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        image_topic = TOPICS.compressed_image if compressed else TOPICS.image
        connections = {"image": writer.add_connection(image_topic, image_type, typestore=typestore)}
        connections["camera_info"] = writer.add_connection(
            TOPICS.camera_info, "sensor_msgs/msg/CameraInfo", typestore=typestore
        )
        if with_mask:
            connections["mask"] = writer.add_connection(TOPICS.mask, "sensor_msgs/msg/Image", typestore=typestore)
        if with_depth:
            connections["depth"] = writer.add_connection(TOPICS.depth, "sensor_msgs/msg/Image", typestore=typestore)
        for index in range(frames):
            stamp = START_NS + int(index * 1e9 / rate_hz)
            header = make_header(types, stamp // 1_000_000_000, stamp % 1_000_000_000, FRAME_ID)
            rgb, mask, depth = demo_frame(index, width, height)
            if compressed:
                ok, png = cv2.imencode(".png", rgb[..., ::-1])
                assert ok
                image = types.CompressedImage(header=header, format="rgb8; png compressed bgr8", data=png.ravel())
            else:
                image = image_message(types, header, rgb, "rgb8")
            messages = {"image": (image, image_type)}
            if index not in missing_camera_info:
                info = camera_info_message(types, header, K, width, height)
                messages["camera_info"] = (info, "sensor_msgs/msg/CameraInfo")
            if with_mask:
                mask_image = image_message(types, header, mask.astype(np.uint8) * 255, "mono8")
                messages["mask"] = (mask_image, "sensor_msgs/msg/Image")
            if with_depth:
                messages["depth"] = (image_message(types, header, depth, "16UC1"), "sensor_msgs/msg/Image")
            for offset_ns, (role, (message, msgtype)) in enumerate(messages.items()):
                raw = typestore.serialize_cdr(message, msgtype)
                if role == "image" and index in corrupt_images:
                    raw = raw[:20]  # a CDR header and the start of the message header, then nothing
                writer.write(connections[role], stamp + 1000 * offset_ns, raw)
    return TOPICS
