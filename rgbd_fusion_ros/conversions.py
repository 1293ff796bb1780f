"""sensor_msgs messages -> numpy arrays (our replacement for cv_bridge; no ROS import needed).

Works on rclpy messages (``data`` is an ``array.array`` or ``bytes``) and on rosbags dataclasses (``data`` is a
numpy uint8 array) alike: only attributes are read. Row padding (``step``) and ``is_bigendian`` are honoured.
Every problem raises ``ValueError`` with a message naming it, so a node can skip the frame and say why.
"""

from __future__ import annotations

import numpy as np

from rgbd_fusion_core.inference.frame_checks import (
    MAX_SENSOR_DEPTH_M,
    MIN_SENSOR_DEPTH_M,
    check_intrinsics,
    sensor_depth_metres,
)
from rgbd_fusion_core.inference.pipeline_io import Frame

# encoding -> (numpy scalar type, channels)
IMAGE_ENCODINGS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
MASK_ENCODINGS = ("mono8", "8UC1")
DEPTH_ENCODINGS = ("16UC1", "32FC1")
MAX_QUOTED_CHARS = 64  # strings from messages (encodings, formats, frame ids) are cut to this in messages


def quoted(text, limit: int = MAX_QUOTED_CHARS) -> str:
    """repr() of a string taken from a message, cut to ``limit`` characters (a crafted 10 kB encoding must not
    flood the log)."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def message_bytes(data) -> np.ndarray:
    """A message's ``data`` (bytes, array.array, list or numpy array) as a flat uint8 array (a view when possible)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, list):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def check_image_layout(msg, allowed: tuple[str, ...] | None = None) -> tuple[np.dtype, int, int]:
    """The cheap checks of a sensor_msgs/Image (encoding, size, step, data length; no pixel is read).

    Returns (pixel dtype in the message's byte order, channels, bytes per row used); raises ``ValueError``.
    """
    encoding = msg.encoding
    accepted = allowed if allowed is not None else tuple(IMAGE_ENCODINGS)
    if encoding not in accepted or encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported image encoding {quoted(encoding)} (supported here: {', '.join(accepted)})")
    scalar, channels = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ValueError(f"empty image ({width}x{height})")
    dtype = np.dtype(scalar).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"image step {step} is smaller than width*channels*bytes = {row_bytes} ({encoding})")
    size = len(msg.data)
    if size != step * height:
        raise ValueError(f"image data has {size} bytes, expected step*height = {step}*{height} = {step * height}")
    return dtype, channels, row_bytes


def check_messages(image, camera_info, mask=None, depth=None) -> None:
    """Cheap checks of matched input messages (the node runs them before a frame may take the worker's slot):
    encodings, sizes, steps, data lengths, the camera_info intrinsics, and that a depth image holds at least one
    valid depth (the only check that reads pixels: one vectorised pass, so a flood of unusable depth images cannot
    displace a good frame either).

    Raises ``ValueError`` prefixed by the message it is about, as ``frame_from_messages`` does.
    """
    shape = None
    if hasattr(image, "format"):
        if len(image.data) == 0:
            raise ValueError("image: empty compressed image")
        fmt = str(image.format).lower()
        if "compresseddepth" in fmt or not ("png" in fmt or "jpeg" in fmt or "jpg" in fmt):
            raise ValueError(
                f"image: unsupported compressed image format {quoted(image.format)} (supported: png, jpeg colour "
                "images)"
            )
    else:
        _read("image", lambda msg, _: check_image_layout(msg, COLOR_ENCODINGS), image, None)
        shape = (int(image.height), int(image.width))
    _read("camera_info", camera_info_to_K, camera_info, shape)
    if mask is not None:
        _read("mask", lambda m, _: check_image_layout(m, MASK_ENCODINGS), mask, None)
        if shape is not None and (int(mask.height), int(mask.width)) != shape:
            raise ValueError(f"mask: mask is {mask.width}x{mask.height} but the image is {shape[1]}x{shape[0]}")
    if depth is not None:
        _read("depth", depth_to_metres, depth, shape)


def image_to_array(msg, allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) or (H, W, C) array in native byte order, channels as in ``msg.encoding``.

    The result is a fresh contiguous array (it does not alias the message). ``allowed`` limits the encodings
    accepted (default: all of ``IMAGE_ENCODINGS``).
    """
    dtype, channels, row_bytes = check_image_layout(msg, allowed)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    buffer = message_bytes(msg.data)
    rows = buffer.reshape(height, step)[:, :row_bytes]
    pixels = rows.copy().view(dtype).astype(dtype.newbyteorder("="), copy=False)
    return pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)


def image_to_rgb(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """Colour sensor_msgs/Image -> (rgb (H, W, 3) uint8 in RGB order, alpha (H, W) uint8 or None).

    Accepts rgb8, bgr8, rgba8, bgra8; the alpha channel, when present, is returned to be used as a person mask.
    """
    pixels = image_to_array(msg, COLOR_ENCODINGS)
    return _split_color(pixels, msg.encoding.startswith("bgr"))


def _split_color(pixels: np.ndarray, bgr_order: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3|4) uint8 in RGB(A) or BGR(A) order -> (contiguous RGB, alpha or None)."""
    rgb = pixels[..., 2::-1] if bgr_order else pixels[..., :3]
    alpha = np.ascontiguousarray(pixels[..., 3]) if pixels.shape[-1] == 4 else None
    return np.ascontiguousarray(rgb), alpha


def mask_to_array(msg, shape: tuple[int, int] | None = None) -> np.ndarray:
    """mono8 / 8UC1 sensor_msgs/Image -> (H, W) bool person mask (nonzero = person).

    shape: the (H, W) of the colour image it belongs to; a mask of another size raises ``ValueError``.
    """
    mask = image_to_array(msg, MASK_ENCODINGS) != 0
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {shape[1]}x{shape[0]}")
    return mask


def depth_to_metres(msg, shape: tuple[int, int] | None = None) -> np.ndarray:
    """16UC1 (millimetres, 0 = none) or 32FC1 (metres) sensor_msgs/Image -> (H, W) float32 metres, NaN = none.

    Non-finite values, 65535 mm and depths outside the plausible sensor range (``frame_checks``) become NaN.
    A depth image without a single valid pixel, or of another size than ``shape`` (H, W), raises ``ValueError``.
    """
    raw = image_to_array(msg, DEPTH_ENCODINGS)
    if shape is not None and raw.shape != tuple(shape):
        raise ValueError(f"depth is {raw.shape[1]}x{raw.shape[0]} but the image is {shape[1]}x{shape[0]}")
    metres = sensor_depth_metres(raw)
    if not np.isfinite(metres).any():
        raise ValueError(
            f"depth image ({msg.encoding}) has no valid pixel (all zero, NaN, infinite, 65535 mm or outside "
            f"{MIN_SENSOR_DEPTH_M:g}-{MAX_SENSOR_DEPTH_M:g} m)"
        )
    return metres


def camera_info_to_K(msg, shape: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/CameraInfo -> K (3, 3) float64 pinhole intrinsics in pixels.

    Raises ``ValueError`` for an all-zero (uncalibrated) K, implausible intrinsics (``check_intrinsics``: the
    entry is named; focal length and principal point are judged against ``shape`` when given), or a
    camera_info whose width/height (when set) differ from the image's ``shape`` (H, W).
    """
    values = np.asarray(msg.k, dtype=np.float64)
    if values.size != 9:
        raise ValueError(f"camera_info K has {values.size} values, expected 9")
    K = values.reshape(3, 3)
    if not np.any(K):
        raise ValueError("camera_info K is all zeros (uncalibrated camera)")
    if shape is not None and msg.width and msg.height and (msg.height, msg.width) != tuple(shape):
        raise ValueError(f"camera_info is for {msg.width}x{msg.height} but the image is {shape[1]}x{shape[0]}")
    image_size = None if shape is None else (shape[1], shape[0])
    return check_intrinsics(K, "camera_info K", image_size)


def compressed_image_to_rgb(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """sensor_msgs/CompressedImage (png or jpeg) -> (rgb (H, W, 3) uint8, alpha (H, W) uint8 or None).

    OpenCV decodes to BGR(A) whatever the ``format`` string says about the original encoding; grey images
    are replicated to three channels.
    """
    import cv2

    fmt = msg.format.lower()
    if "compresseddepth" in fmt or not ("png" in fmt or "jpeg" in fmt or "jpg" in fmt):
        raise ValueError(
            f"unsupported compressed image format {quoted(msg.format)} (supported: png, jpeg colour images)"
        )
    buffer = message_bytes(msg.data)
    if buffer.size == 0:
        raise ValueError("empty compressed image")
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError(f"could not decode compressed image ({quoted(msg.format)}, {buffer.size} bytes)")
    if pixels.dtype != np.uint8:
        raise ValueError(f"compressed image decodes to {pixels.dtype}, expected 8-bit colour")
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2), None
    return _split_color(pixels, bgr_order=True)


POINT_FIELD_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
POINT_FIELD_UINT32 = 6


def pointcloud_to_arrays(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """sensor_msgs/PointCloud2 with float32 x, y, z (and optional packed rgb) -> (points (N, 3) float32 metres,
    colors (N, 3) uint8 RGB or None). Organised clouds are flattened row by row; row padding is honoured.
    """
    offsets = {f.name: (int(f.offset), int(f.datatype)) for f in msg.fields}
    for axis in "xyz":
        if offsets.get(axis, (0, None))[1] != POINT_FIELD_FLOAT32:
            raise ValueError(f"point cloud field {axis!r} missing or not FLOAT32 (fields: {sorted(offsets)})")
    height, width, point_step, row_step = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if row_step < width * point_step:
        raise ValueError(f"point cloud row_step {row_step} is smaller than width*point_step = {width * point_step}")
    buffer = message_bytes(msg.data)
    if buffer.size != row_step * height:
        raise ValueError(f"point cloud data has {buffer.size} bytes, expected row_step*height = {row_step * height}")
    order = ">" if msg.is_bigendian else "<"
    records = buffer.reshape(height, row_step)[:, : width * point_step].reshape(height * width, point_step)
    points = np.stack([_column(records, offsets[axis][0], order + "f4") for axis in "xyz"], axis=1)
    if offsets.get("rgb", (0, None))[1] not in (POINT_FIELD_FLOAT32, POINT_FIELD_UINT32):
        return points.astype(np.float32), None
    packed = _column(records, offsets["rgb"][0], order + "u4")
    colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    return points.astype(np.float32), colors


def _column(records: np.ndarray, offset: int, dtype: str) -> np.ndarray:
    """(N, point_step) uint8 records -> (N,) values of the 4-byte field at ``offset``."""
    return records[:, offset : offset + 4].copy().view(dtype)[:, 0]


def frame_from_messages(image, camera_info, mask=None, depth=None, use_alpha_as_mask: bool = True) -> Frame:
    """Matched input messages -> a pipeline ``Frame``.

    image: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8) or sensor_msgs/CompressedImage (png, jpeg).
    camera_info: its CameraInfo. mask: optional mono8/8UC1 Image; it takes precedence over an alpha channel,
    which is the mask when ``use_alpha_as_mask`` and it holds both zero and nonzero values (a constant alpha,
    as many rgba8 drivers send, is ignored). depth: optional 16UC1/32FC1 Image (stage-2-only mode).
    Raises ``ValueError`` naming the message ("image: ...", "camera_info: ...") and the problem.
    """
    try:
        rgb, alpha = compressed_image_to_rgb(image) if hasattr(image, "format") else image_to_rgb(image)
    except ValueError as error:
        raise ValueError(f"image: {error}") from None
    shape = rgb.shape[:2]
    frame = Frame(rgb=rgb, K=_read("camera_info", camera_info_to_K, camera_info, shape))
    if mask is not None:
        frame.mask = _read("mask", mask_to_array, mask, shape)
    elif alpha is not None and use_alpha_as_mask and alpha.min() == 0 < alpha.max():
        frame.mask = alpha != 0
    if depth is not None:
        frame.sensor_depth = _read("depth", depth_to_metres, depth, shape)
    return frame


def _read(what: str, reader, msg, shape):
    """reader(msg, shape), with a ValueError prefixed by which message it was about."""
    try:
        return reader(msg, shape)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
