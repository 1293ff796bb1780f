"""PersonFinder on MediaPipe 0.10.21's BlazePose (legacy solutions API): mask, 2D and metric 3D keypoints.

Pose finds one person per call, so several people are found one after another: each person found is painted
over (the box around their mask filled with the frame's mean colour) and the frame searched again, until
nobody more is found or max_people are found. People much smaller than the frame (about 100 px tall in
768x576) are missed by the full-frame search; `tile` adds a search in overlapping square crops of that size
(static mode only).
"""

from __future__ import annotations

import cv2
import numpy as np

from rgbd_fusion_core.people.person import LEFT_HIP, LEFT_SHOULDER, RIGHT_HIP, RIGHT_SHOULDER, Person

INSTALL_HINT = (
    'MediaPipeFinder needs mediapipe 0.10.21 (the last release that ships its models): pip install "mediapipe==0.10.21"'
    " (wheels for CPython 3.9-3.12 only)."
)
MIN_SIDE = 32  # frames smaller than this (pixels) hold nobody that pose can find


class MediaPipeFinder:
    """Finds up to max_people people per RGB frame with MediaPipe Pose (model_complexity=1, with segmentation).

    tracking=True is for video: each person slot keeps its own tracker across calls (a frame with nobody
    returns []); the people already tracked are followed every frame, but a search for further people runs only
    every ``search_every`` frames (a newcomer is picked up within that many frames), which saves a whole pose
    call per frame. min_score: a person whose score (see _score) is below it is dropped. tile: side (pixels) of
    overlapping square crops also searched for small people, 0 = off (static mode only).
    """

    def __init__(
        self, max_people: int = 4, tracking: bool = False, min_score: float = 0.5, tile: int = 0, search_every: int = 5
    ):
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as error:
            raise ImportError(INSTALL_HINT) from error
        self._mp_pose = mp_pose
        self.tracking = bool(tracking)
        self.min_score = float(min_score)
        self.tile = 0 if tracking else int(tile)
        self.search_every = max(1, int(search_every))
        self._frames = 0
        self._tracked = 0  # people found in the previous frame (tracking mode)
        self._poses = []
        self.set_max_people(max_people)

    def set_max_people(self, max_people: int) -> None:
        """Change the maximum (a live parameter change): in tracking mode one tracker per person slot, so a
        higher maximum adds trackers; a lower one leaves the spare trackers unused."""
        self.max_people = int(max_people)
        wanted = max(1, self.max_people if self.tracking else 1)
        while len(self._poses) < wanted:
            self._poses.append(
                self._mp_pose.Pose(
                    static_image_mode=not self.tracking,
                    model_complexity=1,
                    enable_segmentation=True,
                    smooth_segmentation=False,  # a smoothed mask would carry the last frame's person over
                )
            )

    def close(self) -> None:
        """Release MediaPipe's graphs and threads now. Left to the garbage collector, their teardown can run at
        any allocation of another thread's work and block it (seen as a hang in a process that builds models)."""
        for pose in self._poses:
            pose.close()
        self._poses = []

    def find(self, rgb: np.ndarray) -> list[Person]:
        """rgb: (H, W, 3) uint8 RGB (grey (H, W) and RGBA are accepted too). Most prominent first; [] if nobody."""
        rgb = _as_rgb(rgb)
        if rgb is None or min(rgb.shape[:2]) < MIN_SIDE or self.max_people < 1:
            return []
        work = rgb.copy()
        fill = np.array(cv2.mean(rgb)[:3]).astype(np.uint8)  # the mean colour (numpy's mean over axis 0 takes ~4 ms)
        people: list[Person] = []
        limit = self.max_people
        if self.tracking and self._frames % self.search_every:
            limit = min(limit, self._tracked)  # follow the people tracked; no search for newcomers this frame
        self._frames += 1
        self._search(work, fill, people, 0, 0, 0, limit)
        self._tracked = len(people)
        side = self.tile
        if side and max(rgb.shape[:2]) > side:
            for y in _starts(rgb.shape[0], side):
                for x in _starts(rgb.shape[1], side):
                    self._search(work, fill, people, y, x, side, self.max_people)
        return people

    def _search(self, work, fill, people, y0, x0, side, limit) -> None:
        """Finds people in work[y0:y0+side, x0:x0+side] (side 0: the whole frame), one per call, painting each
        over in work and appending the good ones to people, until ``limit`` people are known."""
        h, w = work.shape[:2]
        view = work[y0 : y0 + side, x0 : x0 + side] if side else work
        calls = limit + 2  # a couple of extra calls for painted-over low scorers
        for k in range(calls):
            if len(people) >= limit:
                return
            pose = self._poses[min(k, len(self._poses) - 1)]
            found = _run_pose(pose, np.ascontiguousarray(view))
            if found is None:
                return
            mask, kp2, kp3 = found
            if not mask.any():
                return
            full = np.zeros((h, w), bool)
            full[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
            kp2[:, 0] += x0
            kp2[:, 1] += y0
            taken = np.zeros((h, w), bool)
            for person in people:
                taken |= person.mask
            if (full & taken).sum() > 0.5 * full.sum():
                return  # found again someone already painted over: nobody new here
            score = _score(kp2[:, 2])
            if score >= self.min_score:
                people.append(Person(full & ~taken, kp2, kp3, score))
            _paint_over(view, mask, fill)


def _paint_over(image: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> None:
    """Fills the bounding box of the slightly grown mask with one colour, in place. A box, not the silhouette:
    pose finds a person-shaped blob of flat colour again, but not a box."""
    ys, xs = np.nonzero(mask)
    pad = max(2, int(0.05 * np.sqrt(len(ys))))
    y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
    image[y0:y1, x0:x1] = fill


def _score(visibility: np.ndarray) -> float:
    """A person's score from their (33,) keypoint visibilities: the mean of the best-seen third (a portrait
    shows no legs), capped by the better-seen shoulder (face-like blobs in the background show none)."""
    best_third = float(np.sort(visibility)[-11:].mean())
    return min(best_third, float(visibility[[LEFT_SHOULDER, RIGHT_SHOULDER]].max()))


def _run_pose(pose, rgb: np.ndarray):
    """One Pose call. Returns (mask (H, W) bool, keypoints_2d (33, 3), keypoints_3d (33, 3)) or None."""
    result = pose.process(rgb)
    if result.pose_landmarks is None or result.segmentation_mask is None:
        return None
    h, w = rgb.shape[:2]
    kp2 = np.array([[p.x * w, p.y * h, p.visibility] for p in result.pose_landmarks.landmark], np.float32)
    outside = (kp2[:, 0] < 0) | (kp2[:, 0] > w - 1) | (kp2[:, 1] < 0) | (kp2[:, 1] > h - 1)
    kp2[outside, 2] = 0.0  # a guess beyond the frame edge is not a seen keypoint
    kp2[:, 2] = np.clip(kp2[:, 2], 0.0, 1.0)
    kp3 = None
    if result.pose_world_landmarks is not None:
        # MediaPipe's world axes are the camera's already (x right, y down, z away; checked on renders with
        # true depth); only re-centre exactly on the hips' midpoint.
        kp3 = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], np.float32)
        kp3 -= 0.5 * (kp3[LEFT_HIP] + kp3[RIGHT_HIP])
    return _main_region(result.segmentation_mask > 0.5), kp2, kp3


def _main_region(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of a (H, W) bool mask plus the parts within a few pixels of it."""
    if not mask.any():
        return mask
    near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
    if count <= 2:
        return mask
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return mask & (labels == best)


def _as_rgb(image: np.ndarray) -> np.ndarray | None:
    """(H, W, 3) contiguous uint8 from grey, RGB or RGBA input; None for anything else."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.size == 0:
        return None
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


def _starts(length: int, side: int) -> list[int]:
    """Start offsets of crops of `side` pixels, overlapping by half, covering [0, length)."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side, side // 2))
    return starts + [length - side]
