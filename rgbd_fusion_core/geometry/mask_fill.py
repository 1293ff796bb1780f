"""Fill a person's mask where the network left it empty (``fill_mask``): the mask, not the network, decides the
silhouette, and each filled pixel gets a depth that continues the body, never the background behind.

On real photos the network often draws a narrower body than the finder's mask (shoulders of a dark jacket, an
outstretched arm). With the finder's keypoints, an empty pixel takes the depth of the nearest point of the
person's skeleton (the limb segments of ``pose_channels``, at the finder's metric 3D depths), shifted onto the
network's depth by the median offset between the two over the pixels the network did predict; an arm reaching
towards the camera is filled nearer, not at the chest's depth. Without keypoints (a mask from the user), the
empty pixels grow inwards from the predicted ones, each the mean of its person neighbours.
Chosen on 108 validation renders (seed 555), not on the frames scored in docs/RESULTS.md.
"""

from __future__ import annotations

import cv2
import numpy as np


def fill_from_skeleton(
    depth_m: np.ndarray, mask: np.ndarray, skeleton: np.ndarray, skeleton_depth_m: np.ndarray
) -> np.ndarray:
    """depth_m: (H, W) float metres, NaN = no person; mask: (H, W) bool, the person's silhouette; skeleton: (H, W)
    bool, the person's limb segments; skeleton_depth_m: (H, W) float, their depth relative to any common origin,
    metres, larger = farther. Returns a copy in which every mask pixel without depth holds the depth of its nearest
    skeleton pixel plus the median (depth - nearest skeleton depth) of the pixels with depth. Falls back to
    ``fill_to_mask`` when there is no skeleton or no pixel with depth to align it to."""
    depth = np.array(depth_m, dtype=np.float32, copy=True)
    holes = mask & ~np.isfinite(depth)
    known = np.isfinite(depth)
    if not holes.any():
        return depth
    if not skeleton.any() or not known.any():
        return fill_to_mask(depth, mask)
    # label of each pixel = the index of its nearest skeleton pixel (L2), as distanceTransform numbers them
    _, labels = cv2.distanceTransformWithLabels(
        (~skeleton).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(skeleton)
    depth_of_label = np.zeros(labels.max() + 1, np.float32)
    depth_of_label[labels[ys, xs]] = skeleton_depth_m[ys, xs]
    nearest = depth_of_label[labels]
    offset = np.median(depth[known] - nearest[known])
    depth[holes] = offset + nearest[holes]
    return depth


def fill_to_mask(depth_m: np.ndarray, mask: np.ndarray, rings: int = 32) -> np.ndarray:
    """depth_m: (H, W) float metres, NaN = no person; mask: (H, W) bool, the person's silhouette. Returns a copy in
    which mask pixels without depth take the mean depth of their person neighbours (3x3), ring by ring inwards
    from the predicted person, up to ``rings`` rings: the mask, not the network, decides the silhouette, and a
    filled pixel continues the body next to it (never the background behind)."""
    depth = np.array(depth_m, dtype=np.float32, copy=True)
    for _ in range(rings):
        valid = np.isfinite(depth)
        holes = mask & ~valid
        if not holes.any() or not valid.any():
            break
        total = cv2.boxFilter(np.where(valid, depth, 0).astype(np.float32), -1, (3, 3), normalize=False)
        count = cv2.boxFilter(valid.astype(np.float32), -1, (3, 3), normalize=False)
        reached = holes & (count > 0)
        if not reached.any():
            break
        depth[reached] = total[reached] / count[reached]
    return depth
