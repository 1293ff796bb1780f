"""Metrics of DESIGN.md section 4.

Paper-compatible (network space, all pixels, after setting predictions at or below the threshold to -1): MAE,
MSE and the IoU of the foreground masks ``d > threshold``. Metric (metres, on ground-truth foreground pixels
where the prediction has depth too): MAE and RMSE in mm, AbsRel, shares within 1/2/5 cm, coverage; and the
symmetric Chamfer distance between predicted and true point clouds.
"""

from __future__ import annotations

import torch

from rgbd_fusion_core.geometry.depth_space import DepthSpace


def paper_metrics(pred: torch.Tensor, truth: torch.Tensor, space: DepthSpace, thresholds=(-0.95, -0.9)) -> dict:
    """pred, truth: (B, 1, H, W) network space. Returns per-sample (B,) tensors: mae, mse, iou@thr."""
    cleaned = space.clean(pred)
    err = cleaned - truth
    out = {"mae": err.abs().mean(dim=(1, 2, 3)), "mse": (err**2).mean(dim=(1, 2, 3))}
    for thr in thresholds:
        p, t = pred > thr, truth > thr
        inter = (p & t).sum(dim=(1, 2, 3)).float()
        union = (p | t).sum(dim=(1, 2, 3)).float()
        out[f"iou@{thr:g}"] = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return out


def metric_depth_metrics(pred_m: torch.Tensor, truth_m: torch.Tensor) -> dict:
    """pred_m, truth_m: (B, 1, H, W) metres with NaN = no depth. Per-sample (B,) tensors; NaN when empty."""
    truth_fg = torch.isfinite(truth_m)
    both = truth_fg & torch.isfinite(pred_m)
    diff = torch.where(both, pred_m - truth_m, torch.zeros_like(pred_m)).abs()
    n = both.sum(dim=(1, 2, 3)).float()
    safe_truth = torch.where(both, truth_m, torch.ones_like(truth_m))

    def mean(x):
        return torch.where(n > 0, (x * both).sum(dim=(1, 2, 3)) / n.clamp(min=1), torch.full_like(n, float("nan")))

    out = {
        "mae_mm": 1000 * mean(diff),
        "rmse_mm": 1000 * mean(diff**2).sqrt(),
        "abs_rel": mean(diff / safe_truth),
        "coverage": n / truth_fg.sum(dim=(1, 2, 3)).float().clamp(min=1),
    }
    for cm in (1, 2, 5):
        out[f"within_{cm}cm"] = mean((diff < cm / 100).float())
    return out


def chamfer_distance_mm(a: torch.Tensor, b: torch.Tensor, max_points: int = 4096, seed: int = 0) -> float:
    """Symmetric Chamfer distance in mm between point sets (N, 3) and (M, 3) in metres: the mean of the mean
    nearest-neighbour distances both ways, on at most ``max_points`` random points of each."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    if len(a) > max_points:
        a = a[torch.randperm(len(a), generator=g)[:max_points]]
    if len(b) > max_points:
        b = b[torch.randperm(len(b), generator=g)[:max_points]]
    d = torch.cdist(a.double(), b.double())
    return float(1000 * 0.5 * (d.min(dim=1).values.mean() + d.min(dim=0).values.mean()))
