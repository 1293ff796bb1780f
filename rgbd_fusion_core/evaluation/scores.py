"""Per-sample scores of network-space depth against the truth, and their means: used by evaluation and the demo."""

from __future__ import annotations

import numpy as np
import torch

from rgbd_fusion_core.evaluation.metrics import chamfer_distance_mm, metric_depth_metrics, paper_metrics
from rgbd_fusion_core.geometry.camera import backproject


class Accumulator:
    """Collects per-sample metric tensors and reports their means (NaN-aware)."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}

    def add(self, metrics: dict) -> None:
        for key, value in metrics.items():
            self.values.setdefault(key, []).extend(torch.as_tensor(value).flatten().tolist())

    def means(self) -> dict:
        out = {}
        for key, values in self.values.items():
            finite = [v for v in values if np.isfinite(v)]
            out[key] = float(np.mean(finite)) if finite else float("nan")
        return out


def score(pred: torch.Tensor, truth: torch.Tensor, z_ref: torch.Tensor, K: torch.Tensor, space) -> dict:
    """All per-sample metrics for (B, 1, H, W) network-space predictions against the truth."""
    metrics = paper_metrics(pred, truth, space)
    metrics["iou"] = metrics["iou@-0.95"]
    zr = z_ref.view(-1, 1, 1, 1)
    pred_m, truth_m = space.to_metres(space.clean(pred), zr), space.to_metres(truth, zr)
    metrics.update(metric_depth_metrics(pred_m, truth_m))
    chamfer = []
    for p, t, k in zip(pred_m[:, 0].numpy(), truth_m[:, 0].numpy(), K.numpy()):
        chamfer.append(
            chamfer_distance_mm(torch.from_numpy(backproject(p, k)[0]), torch.from_numpy(backproject(t, k)[0]))
        )
    metrics["chamfer_mm"] = torch.tensor(chamfer)
    return metrics
