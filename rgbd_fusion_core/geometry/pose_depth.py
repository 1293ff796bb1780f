"""The finder's skeleton as a second depth source for a person's pixels: filling the mask where the network left
it empty (``fill_mask``) and taking part of the coarse depth from it (``pose_depth_weight``).

The finder (trained on real images) orders body parts in depth better than our network does on real photos and
about as well on renders; the network draws the finer surface. The skeleton's depth field gives every pixel the
depth of its nearest limb point (the limb segments of ``pose_channels``, at the finder's metric 3D depths), shifted
onto the network's depth by the median offset over the pixels the network predicted. Filling: an empty mask
pixel takes the field's depth, so an arm reaching towards the camera is filled nearer, not at the chest's depth.
Blending: the field's smooth part replaces a share of the network's smooth part, the network's detail stays.
Both chosen on 108 validation renders (seed 555), not on the frames scored in docs/RESULTS.md.
"""

from __future__ import annotations

import cv2
import numpy as np

BLEND_SIGMA = 6 / 256  # the Gaussian that splits coarse from fine depth, as a share of the crop's side


def limb_field(depth_m: np.ndarray, skeleton: np.ndarray, limb_depth_m: np.ndarray) -> np.ndarray | None:
    """depth_m: (H, W) float metres, NaN = no person; skeleton: (H, W) bool, the person's limb segments;
    limb_depth_m: (H, W) float, their depth relative to any common origin, metres, larger = farther. Returns (H, W)
    float32 metres: at every pixel, the depth of its nearest skeleton pixel plus the median (depth - nearest skeleton
    depth) over the pixels with depth; None without a skeleton or without a pixel with depth."""
    known = np.isfinite(depth_m)
    if not skeleton.any() or not known.any():
        return None
    # label of each pixel = the index of its nearest skeleton pixel (L2), as distanceTransform numbers them
    _, labels = cv2.distanceTransformWithLabels(
        (~skeleton).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(skeleton)
    depth_of_label = np.zeros(labels.max() + 1, np.float32)
    depth_of_label[labels[ys, xs]] = limb_depth_m[ys, xs]
    nearest = depth_of_label[labels]
    return nearest + np.float32(np.median(depth_m[known] - nearest[known]))


def fill_from_field(depth_m: np.ndarray, mask: np.ndarray, field: np.ndarray) -> np.ndarray:
    """(H, W) metres with every ``mask`` pixel that has no depth (NaN) set to ``field`` (H, W) there; a copy."""
    return np.where(mask & ~np.isfinite(depth_m), field, depth_m).astype(np.float32)


def blend_coarse_depth(depth_m: np.ndarray, field: np.ndarray, weight: float) -> np.ndarray:
    """depth_m (H, W) metres, NaN = no person; field (H, W) metres. On the person's pixels returns depth +
    weight * (G(field) - G(depth)), G the Gaussian smoothing (sigma BLEND_SIGMA of the side) over the person's
    pixels only: a ``weight`` share of the coarse depth comes from the field, the fine detail from depth_m."""
    person = np.isfinite(depth_m)
    if weight <= 0 or not person.any():
        return np.array(depth_m, dtype=np.float32, copy=True)
    sigma = BLEND_SIGMA * depth_m.shape[0]
    share = cv2.GaussianBlur(person.astype(np.float32), (0, 0), sigma)

    def smooth(values: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(np.where(person, values, 0).astype(np.float32), (0, 0), sigma) / np.maximum(share, 1e-6)

    coarse_shift = weight * (smooth(field) - smooth(depth_m))
    return np.where(person, depth_m + coarse_shift, np.nan).astype(np.float32)
