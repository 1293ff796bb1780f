"""Camera frames with known people, built from the bundled renders: for the benchmark and the tests.

A bundled render is a 256x256 crop of a synthetic person with its true depth and intrinsics. ``paste_people``
puts the person pixels of several renders into one grey camera frame at given places, so where everyone is, and
how far, is known pixel for pixel; ``people_frame`` scales each person to fill a share of the frame (the
benchmark's frames: only the masks stay known). ``KnownPeople`` is a person finder that returns given masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import Frame
from rgbd_fusion_core.io.camera_file import default_intrinsics

FRAME_SHAPE = (480, 640)  # (height, width) of a VGA camera frame
GREY = 118  # background level of a pasted frame


@dataclass(frozen=True)
class Render:
    """rgb: (256, 256, 3) uint8. depth: (256, 256) float64 metres, 0 = background. K: (3, 3) of the render."""

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.depth > 0


def bundled_render(index: int) -> Render:
    """The ``index``-th render of ``rgbd_fusion_core/demo_frames``."""
    from rgbd_fusion_core.apps.demo_run import BUNDLED_FRAMES
    from rgbd_fusion_core.data.format import read_index
    from rgbd_fusion_core.io.imageio import read_depth_m, read_rgb

    data = read_index(BUNDLED_FRAMES)
    sample = data.samples[index]
    files = sample.files[256]
    depth = np.nan_to_num(read_depth_m(BUNDLED_FRAMES / files["depth"], unit=data.depth_unit), nan=0.0)
    return Render(read_rgb(BUNDLED_FRAMES / files["rgb"]), depth.astype(np.float64), np.asarray(sample.K[256], float))


def paste_people(renders: list[Render], corners: list[tuple[int, int]], shape=FRAME_SHAPE):
    """The renders' person pixels in one grey frame of ``shape``, render k's top-left corner at ``corners[k]``
    (x, y), clipped at the frame's edges. Returns (rgb (H, W, 3) uint8, true depth (H, W) metres 0 = none, K of
    the frame (the first render's, shifted), each person's (H, W) bool mask)."""
    rgb = np.full((*shape, 3), GREY, np.uint8)
    depth = np.zeros(shape)
    masks = []
    for render, (x, y) in zip(renders, corners):
        full = np.zeros(shape, bool)
        ys, xs = np.nonzero(render.mask)
        keep = (ys + y >= 0) & (ys + y < shape[0]) & (xs + x >= 0) & (xs + x < shape[1])
        ys, xs = ys[keep], xs[keep]
        rgb[ys + y, xs + x] = render.rgb[ys, xs]
        depth[ys + y, xs + x] = render.depth[ys, xs]
        full[ys + y, xs + x] = True
        masks.append(full)
    K = renders[0].K.copy()
    K[0, 2] += corners[0][0]
    K[1, 2] += corners[0][1]
    return rgb, depth, K, masks


def people_frame(renders, people: int, shape=FRAME_SHAPE) -> tuple[Frame, list[np.ndarray]]:
    """A grey frame of ``shape`` with ``people`` renders (``apps.scenes.Render``, cut to their person and scaled
    to fill a third of the frame's width each) side by side; returns the frame (K: 60 degree horizontal field of
    view: the scaling leaves the renders' own K behind) and each pasted person's full-frame mask."""
    import cv2

    height, width = shape
    rgb = np.full((height, width, 3), GREY, np.uint8)
    masks = []
    tile = width // people
    for k in range(people):
        render, mask = renders[k % len(renders)].rgb, renders[k % len(renders)].mask
        ys, xs = np.nonzero(mask)
        y0, y1 = max(ys.min() - 12, 0), min(ys.max() + 13, mask.shape[0])
        x0, x1 = max(xs.min() - 12, 0), min(xs.max() + 13, mask.shape[1])
        scale = min(0.92 * height / (y1 - y0), (tile - 8) / (x1 - x0))
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        piece = cv2.resize(render[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR)
        piece_mask = cv2.resize(mask[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        oy, ox = (height - size[1]) // 2, k * tile + (tile - size[0]) // 2
        rgb[oy : oy + size[1], ox : ox + size[0]] = piece
        full = np.zeros(shape, bool)
        full[oy : oy + size[1], ox : ox + size[0]] = piece_mask
        masks.append(full)
    return Frame(rgb, default_intrinsics(width, height)), masks


class KnownPeople:
    """A person finder that returns fixed masks (no keypoints): the benchmark without MediaPipe."""

    def __init__(self, masks: list[np.ndarray]):
        from rgbd_fusion_core.people.person import Person

        self.people = [Person(mask, None, None, 1.0) for mask in masks]

    def find(self, rgb: np.ndarray) -> list:
        return list(self.people)
