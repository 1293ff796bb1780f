"""Camera frames with known people, built from the bundled renders: for the benchmark and the tests.

A bundled render is a 256x256 crop of a synthetic person with its true depth and intrinsics; ``paste_people``
puts the person pixels of several renders into one grey camera frame at given places, so where everyone is, and
how far, is known pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
