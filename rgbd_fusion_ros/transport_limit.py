"""The largest message the shipped Fast DDS profile carries, and a warning for cameras whose images exceed it.

A message larger than the profile's shared-memory segment is dropped by the transport before any subscriber sees
it, so the node never gets the image and cannot log it. Its camera_info (small) still arrives and announces the
image size: that is where the node can tell.
"""

from __future__ import annotations

PROFILE = "config/fastdds_large_messages.xml"
SEGMENT_BYTES = 33_554_432  # segment_size and maxMessageSize of PROFILE (tests/ros/test_ros_package_files.py)
RGB8_BYTES_PER_PIXEL = 3


def oversize_warning(width: int, height: int) -> str | None:
    """A warning when a width x height rgb8 image is larger than the profile carries, else None."""
    size = int(width) * int(height) * RGB8_BYTES_PER_PIXEL
    if size <= SEGMENT_BYTES:
        return None
    return (
        f"camera_info announces {width}x{height} images: {size / 1e6:.1f} MB as rgb8, above the "
        f"{SEGMENT_BYTES / 1e6:.1f} MB that {PROFILE} carries; such images are dropped by the transport before "
        "this node sees them (raise segment_size and maxMessageSize there, or send compressed or downscaled images)"
    )
