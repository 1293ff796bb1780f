"""The person finder's output as image channels for a pose-conditioned stage 1 (``conditioning: rgb_pose``).

Three channels at the stage's resolution, each in [-1, 1], built the same way from a render's finder annotation
(training) and from the finder on a camera frame (inference), so both domains look alike to the network:

0. mask: 1 on the finder's person mask, -1 elsewhere;
1. skeleton: 1 on the limb segments between keypoints seen (visibility >= 0.5), -1 elsewhere (and everywhere
   when there are no keypoints);
2. skeleton depth: on those segments, the keypoints' depth relative to their median, in network-space units
   (nearer is larger: ``(z_median - z) * DepthSpace.scale``, interpolated along each segment, clipped to
   [-1, 1]); 0 elsewhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from rgbd_fusion_core.geometry.crop import cut, resize_area
from rgbd_fusion_core.people.person import (
    LEFT_ANKLE,
    LEFT_EAR,
    LEFT_ELBOW,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NOSE,
    RIGHT_ANKLE,
    RIGHT_EAR,
    RIGHT_ELBOW,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
)

POSE_CHANNELS = 3
MIN_VISIBILITY = 0.5
LIMBS = (
    (LEFT_SHOULDER, RIGHT_SHOULDER),
    (LEFT_HIP, RIGHT_HIP),
    (LEFT_SHOULDER, LEFT_HIP),
    (RIGHT_SHOULDER, RIGHT_HIP),
    (LEFT_SHOULDER, LEFT_ELBOW),
    (LEFT_ELBOW, LEFT_WRIST),
    (RIGHT_SHOULDER, RIGHT_ELBOW),
    (RIGHT_ELBOW, RIGHT_WRIST),
    (LEFT_HIP, LEFT_KNEE),
    (LEFT_KNEE, LEFT_ANKLE),
    (RIGHT_HIP, RIGHT_KNEE),
    (RIGHT_KNEE, RIGHT_ANKLE),
    (NOSE, LEFT_EAR),
    (NOSE, RIGHT_EAR),
    (LEFT_EAR, LEFT_SHOULDER),
    (RIGHT_EAR, RIGHT_SHOULDER),
)
PIECES = 4  # each limb is drawn as this many pieces, each at its own interpolated depth
FRACTIONS = tuple(k / PIECES for k in range(PIECES + 1))  # where along a limb the pieces start and end


def pose_channels(
    mask: np.ndarray | None,
    keypoints_2d: np.ndarray | None,
    keypoints_3d: np.ndarray | None,
    size: int,
    depth_scale: float,
) -> np.ndarray:
    """(3, size, size) float32 channels of one person already in crop coordinates.

    mask: (size, size) bool or None (None: the whole crop is -1, no person known); keypoints_2d (33, 3) x, y in
    the crop's pixels (pixel centres at integers) and visibility; keypoints_3d (33, 3) metres (only z is used);
    depth_scale: network units per metre (``DepthSpace.scale``).
    """
    out = np.full((POSE_CHANNELS, size, size), -1.0, np.float32)
    if mask is not None:
        out[0] = np.where(mask, 1.0, -1.0)
    skeleton, out[2] = skeleton_depth(keypoints_2d, keypoints_3d, size, depth_scale)
    out[1] = np.where(skeleton, 1.0, -1.0)
    return out


def skeleton_depth(
    keypoints_2d: np.ndarray | None, keypoints_3d: np.ndarray | None, size: int, depth_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The limb segments between keypoints seen (visibility >= 0.5) drawn into a (size, size) image, each piece at
    its keypoints' interpolated depth relative to their median: ``(z_median - z) * depth_scale`` (nearer is
    larger), clipped to [-1, 1]. Keypoints as ``pose_channels`` takes them. Returns (skeleton (size, size) bool,
    depth (size, size) float32, 0 off the skeleton); an empty skeleton without keypoints."""
    skeleton = np.zeros((size, size), np.uint8)
    depth = np.zeros((size, size), np.float32)
    if keypoints_2d is None or keypoints_3d is None:
        return skeleton > 0, depth
    seen = (keypoints_2d[:, 2] >= MIN_VISIBILITY) & np.isfinite(keypoints_2d).all(1) & np.isfinite(keypoints_3d).all(1)
    if not seen.any():
        return skeleton > 0, depth
    z = keypoints_3d[:, 2].astype(np.float64)
    relative = np.clip((np.median(z[seen]) - z) * depth_scale, -1.0, 1.0)
    limbs = np.array([limb for limb in LIMBS if seen[limb[0]] and seen[limb[1]]], np.intp).reshape(-1, 2)
    start_kp, end_kp = keypoints_2d[limbs[:, 0], :2], keypoints_2d[limbs[:, 1], :2]
    thickness = max(1, round(size / 64))
    shift = 4  # cv2 sub-pixel drawing: coordinates in 1/16 pixel, rounded half to even
    # the piece ends along every limb (PIECES + 1, limbs, 2) and each piece's depth at its middle (PIECES, limbs)
    ends = [np.rint((start_kp * (1 - f) + end_kp * f) * (1 << shift)).astype(np.int64) for f in FRACTIONS]
    middles = [(f0 + f1) / 2 for f0, f1 in zip(FRACTIONS[:-1], FRACTIONS[1:])]
    values = [relative[limbs[:, 0]] * (1 - m) + relative[limbs[:, 1]] * m for m in middles]
    for limb in range(len(limbs)):
        for k in range(PIECES):
            start, end = tuple(ends[k][limb].tolist()), tuple(ends[k + 1][limb].tolist())
            cv2.line(skeleton, start, end, 1, thickness, cv2.LINE_8, shift)
            cv2.line(depth, start, end, float(values[k][limb]), thickness, cv2.LINE_8, shift)  # later pieces win
    return skeleton > 0, depth


def keypoints_to_crop(keypoints_2d: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """(33, 3) full-frame pixel keypoints -> the same in a square crop ``box`` = (x0, y0, side) resized to
    ``size`` (pixel centres at integers: u' = (u - x0 + 0.5) * size / side - 0.5); visibility kept."""
    x0, y0, side = box
    scale = size / side
    out = np.array(keypoints_2d, dtype=np.float32, copy=True)
    out[:, 0] = (out[:, 0] - x0 + 0.5) * scale - 0.5
    out[:, 1] = (out[:, 1] - y0 + 0.5) * scale - 0.5
    return out


def crop_pose_channels(
    mask: np.ndarray | None,
    keypoints_2d: np.ndarray | None,
    keypoints_3d: np.ndarray | None,
    box: tuple[int, int, int],
    size: int,
    depth_scale: float,
) -> np.ndarray:
    """(3, size, size) pose channels of a person seen in a frame, for the square crop ``box`` (x0, y0, side)
    resized to ``size``: the one construction used in training (a render is its own crop, box (0, 0, side)) and
    at inference (a crop of a camera frame). mask (H, W) bool or None; keypoints as ``pose_channels`` takes them
    but in frame pixels. The mask is area-resized and kept where at least half covered."""
    crop_mask = None if mask is None else resize_area(cut(mask.astype(np.float32), box), size) >= 0.5
    crop_keypoints = None if keypoints_2d is None else keypoints_to_crop(keypoints_2d, box, size)
    return pose_channels(crop_mask, crop_keypoints, keypoints_3d, size, depth_scale)
