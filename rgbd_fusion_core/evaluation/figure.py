"""Evaluation figure: one row per sample, RGB | truth | prediction | absolute error (all in metres)."""

from __future__ import annotations

import cv2
import numpy as np

from rgbd_fusion_core.geometry.conditioning import rgb_from_network
from rgbd_fusion_core.io.imageio import colorize_depth, write_rgb


def error_image(error_m: np.ndarray, max_m: float = 0.05) -> np.ndarray:
    """(H, W) absolute error in metres (NaN = not compared) -> RGB, 0 black .. max_m white-hot (INFERNO)."""
    valid = np.isfinite(error_m)
    grey = np.clip(np.nan_to_num(error_m) / max_m * 255, 0, 255).astype(np.uint8)
    out = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    out[~valid] = 0
    return out


def save_comparison_figure(path, rows, space) -> None:
    """rows: (rgb (3,H,W) in [-1,1], truth (1,H,W), prediction (1,H,W) network space, z_ref) tuples."""
    tiles = []
    for rgb, truth, pred, z_ref in rows:
        z = float(z_ref)
        truth_m = space.to_metres(truth[0].numpy(), z)
        pred_m = space.to_metres(space.clean(pred)[0].numpy(), z)
        valid = np.isfinite(truth_m)
        near, far = (np.nanpercentile(truth_m, 2), np.nanpercentile(truth_m, 98)) if valid.any() else (None, None)
        image = rgb_from_network(rgb)
        error = np.abs(pred_m - truth_m)
        tiles.append(
            np.concatenate(
                [
                    image,
                    colorize_depth(truth_m, near, far),
                    colorize_depth(pred_m, near, far),
                    error_image(error),
                ],
                axis=1,
            )
        )
    write_rgb(path, np.concatenate(tiles, axis=0))
