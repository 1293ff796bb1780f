"""Fill a person's mask from the neighbouring depths: for a mask without keypoints (a user's mask), where the
network left part of the person empty (``fill_mask``; with the finder's keypoints ``pose_depth.py`` fills instead).
"""

from __future__ import annotations

import cv2
import numpy as np


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
