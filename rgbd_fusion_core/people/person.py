"""The person-finder interface: what a finder returns for each person in a frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# MediaPipe BlazePose 33-landmark order (the indices into keypoints_2d / keypoints_3d).
NOSE = 0
LEFT_EYE, RIGHT_EYE = 2, 5
LEFT_EAR, RIGHT_EAR = 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_HIP, RIGHT_HIP = 23, 24
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
LEFT_HEEL, RIGHT_HEEL = 29, 30
LEFT_FOOT, RIGHT_FOOT = 31, 32
NUM_KEYPOINTS = 33


@dataclass
class Person:
    """One person found in a frame.

    mask: (H, W) bool, the person's pixels in the full frame.
    keypoints_2d: (33, 3) float32 or None: x, y in full-frame pixels, visibility in [0, 1].
    keypoints_3d: (33, 3) float32 or None: metric keypoints in metres, camera-aligned axes (x right, y down,
        z forward = away from the camera), centred on the midpoint of the hips.
    score: confidence in [0, 1].
    """

    mask: np.ndarray
    keypoints_2d: np.ndarray | None
    keypoints_3d: np.ndarray | None
    score: float


class PersonFinder(Protocol):
    """Anything that finds people in an RGB frame (a ``close()`` method, if it has one, is called when the
    Pipeline that owns it is closed)."""

    def find(self, rgb: np.ndarray) -> list[Person]:
        """rgb: (H, W, 3) uint8 RGB. Returns the people found, most prominent first; [] when nobody."""
        ...
