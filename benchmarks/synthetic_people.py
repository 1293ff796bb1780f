"""Person handling on synthetic camera frames: old centre crop against the mask-first Pipeline; prints JSON.

    rgbd-fusion make-dataset --out /tmp/synth_test --subjects 24 --views-per-subject 1 --seed 123 --workers 1
    python benchmarks/synthetic_people.py --data /tmp/synth_test --limit 24 --out /tmp/synthetic_people.json

Each 256x256 render (ground-truth depth, K) is pasted into a 480x640 canvas filled with the render's background
colour (median of the render's border pixels that are not person), K shifted by the paste offset; this mimics a
camera frame. Two framings: ``full`` (the whole render pasted at the canvas centre) and ``upper`` (the render cut
to its top ``--upper-fraction`` rows, truth cut alike, pasted horizontally centred with its bottom on the frame's
bottom edge by default, i.e. the body leaves the frame as in a real upper-body shot; ``--upper-anchor centre``
pastes it at the centre instead).

Configurations (all with full_frame=True):
- ``old``: person_source=none, reference_depth=height_prior, edge_step_m=0 (centre crop, no mask, no filter);
- ``new``: the defaults (MediaPipe finder, mask-first, z_ref auto = pose then height prior, edge_step_m=0.08);
- ``new_no_filter``: the defaults with edge_step_m=0 (isolates the flying-pixel filter);
- ``new_pose`` / ``new_height_prior``: the defaults with reference_depth=pose / height_prior (z_ref comparison;
  ``pose`` falls back to the height prior when the finder gives no keypoints or the fit fails, counted in
  ``z_ref_sources``; ``z_ref_pose_only`` scores only the frames whose z_ref really came from the pose).

Metrics per frame, aggregated per framing and configuration:
- ``iou``: predicted person pixels (depth_full finite) against the true mask (truth depth > 0) in the frame;
- ``flying_share`` / ``flying_share_truth``: ``behind_share(depth, 0.4)`` of the prediction and of the truth;
- ``shape_mae_mm``: on the intersection, prediction re-referenced by medians (pred - median(pred) +
  median(truth), both over the intersection), mean absolute error in mm: the shape, free of the z_ref error;
- ``metric_mae_mm``: the same without re-referencing (shape and z_ref error together);
- ``z_ref``: |z_ref - median true depth of the visible person| in metres and as a share of that distance.
Frames where nobody is found count with IoU 0 and no depth; their z_ref is NaN and left out of the z_ref and
MAE statistics (``z_ref_frames`` says how many frames those cover, ``nobody_found_ids`` which were missed).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

CANVAS = (480, 640)


def background_colour(rgb: np.ndarray, person: np.ndarray, border: int = 4) -> np.ndarray:
    """Median colour of the render's outer ``border`` pixels that are not person (all border pixels if none)."""
    ring = np.zeros(person.shape, bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    chosen = ring & ~person
    if not chosen.any():
        chosen = ring
    return np.median(rgb[chosen], axis=0).astype(np.uint8)


def make_frame(rgb, depth, K, framing: str, upper_fraction: float, upper_anchor: str):
    """(canvas rgb (H, W, 3) uint8, canvas truth depth (H, W) metres 0 = none, canvas K) for one framing."""
    colour = background_colour(rgb, depth > 0)
    if framing == "upper":
        rows = int(round(upper_fraction * rgb.shape[0]))
        rgb, depth = rgb[:rows], depth[:rows]
    h, w = rgb.shape[:2]
    H, W = CANVAS
    x0 = (W - w) // 2
    y0 = H - h if (framing == "upper" and upper_anchor == "bottom") else (H - h) // 2
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = colour
    canvas[y0 : y0 + h, x0 : x0 + w] = rgb
    truth = np.zeros((H, W), np.float32)
    truth[y0 : y0 + h, x0 : x0 + w] = depth
    K = np.array(K, np.float64, copy=True)
    K[0, 2] += x0
    K[1, 2] += y0
    return canvas, truth, K


def frame_metrics(result, truth: np.ndarray) -> dict:
    from rgbd_fusion_core.geometry.depth_edges import behind_share

    pred = result.depth_full
    pred_mask = np.isfinite(pred)
    true_mask = truth > 0
    inter = pred_mask & true_mask
    union = pred_mask | true_mask
    z_true = float(np.median(truth[true_mask]))
    out = {
        "people_found": int(result.people_found),
        "iou": float(inter.sum() / union.sum()) if union.any() else float("nan"),
        "flying_share": behind_share(pred, 0.4),
        "flying_share_truth": behind_share(np.where(true_mask, truth, np.nan), 0.4),
        "shape_mae_mm": float("nan"),
        "metric_mae_mm": float("nan"),
        "z_true_m": z_true,
        "z_ref_m": float(result.z_ref),
        "z_ref_source": result.z_ref_source,
        "z_ref_abs_err_m": abs(float(result.z_ref) - z_true),
        "z_ref_rel_err": abs(float(result.z_ref) - z_true) / z_true,
    }
    if inter.sum() >= 10:
        p, t = pred[inter].astype(np.float64), truth[inter].astype(np.float64)
        out["shape_mae_mm"] = float(1000 * np.mean(np.abs(p - np.median(p) + np.median(t) - t)))
        out["metric_mae_mm"] = float(1000 * np.mean(np.abs(p - t)))
    return out


def _stat(values, fn) -> float | None:
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    return round(float(fn(values)), 5) if values.size else None


def aggregate(rows: list[dict]) -> dict:
    def col(key):
        return [r[key] for r in rows]

    pose_rows = [r for r in rows if r["z_ref_source"] == "pose"]
    return {
        "frames": len(rows),
        "people_found_frames": sum(r["people_found"] > 0 for r in rows),
        "nobody_found_ids": [r["id"] for r in rows if r["people_found"] == 0],
        "iou_mean": _stat(col("iou"), np.mean),
        "iou_median": _stat(col("iou"), np.median),
        "iou_min": _stat(col("iou"), np.min),
        "flying_share_mean": _stat(col("flying_share"), np.mean),
        "flying_share_truth_mean": _stat(col("flying_share_truth"), np.mean),
        "shape_mae_mm_mean": _stat(col("shape_mae_mm"), np.mean),
        "shape_mae_mm_median": _stat(col("shape_mae_mm"), np.median),
        "metric_mae_mm_median": _stat(col("metric_mae_mm"), np.median),
        "z_ref_frames": int(np.isfinite(col("z_ref_m")).sum()),
        "z_ref_abs_err_m_median": _stat(col("z_ref_abs_err_m"), np.median),
        "z_ref_rel_err_median": _stat(col("z_ref_rel_err"), np.median),
        "z_ref_rel_err_p90": _stat(col("z_ref_rel_err"), lambda v: np.percentile(v, 90)),
        "z_ref_rel_err_max": _stat(col("z_ref_rel_err"), np.max),
        "z_ref_sources": dict(Counter(col("z_ref_source"))),
        "z_ref_pose_only": {
            "frames": len(pose_rows),
            "abs_err_m_median": _stat([r["z_ref_abs_err_m"] for r in pose_rows], np.median),
            "rel_err_median": _stat([r["z_ref_rel_err"] for r in pose_rows], np.median),
        },
    }


def configurations():
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig

    return {
        "old": PipelineConfig(person_source="none", reference_depth="height_prior", edge_step_m=0.0, full_frame=True),
        "new": PipelineConfig(full_frame=True),
        "new_no_filter": PipelineConfig(edge_step_m=0.0, full_frame=True),
        "new_pose": PipelineConfig(reference_depth="pose", full_frame=True),
        "new_height_prior": PipelineConfig(reference_depth="height_prior", full_frame=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder written by rgbd-fusion make-dataset")
    parser.add_argument("--split", default="all")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--upper-fraction", type=float, default=0.55)
    parser.add_argument("--upper-anchor", choices=("bottom", "centre"), default="bottom")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--per-frame", action="store_true", help="also print every frame's metrics")
    parser.add_argument("--out", default="", help="also write the JSON here")
    args = parser.parse_args()

    import torch

    from rgbd_fusion_core.data.format import read_index
    from rgbd_fusion_core.inference.pipeline import Pipeline
    from rgbd_fusion_core.inference.pipeline_io import Frame
    from rgbd_fusion_core.io.imageio import read_depth_m, read_rgb

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    index = read_index(args.data)
    samples = index.split_samples(args.split)[: args.limit]
    configs = configurations()
    base = Pipeline.from_pretrained(device=args.device, config=configs["new"])
    pipelines = {name: base.with_config(cfg) for name, cfg in configs.items()}
    framings = ("full", "upper")
    rows = {f: {name: [] for name in configs} for f in framings}
    per_frame = []
    call_ms = []
    for sample in samples:
        rgb = read_rgb(index.root / sample.files[256]["rgb"])
        depth = read_depth_m(index.root / sample.files[256]["depth"], index.depth_unit)
        for framing in framings:
            image, truth, K = make_frame(rgb, depth, sample.K[256], framing, args.upper_fraction, args.upper_anchor)
            for name, pipeline in pipelines.items():
                t0 = time.perf_counter()
                result = pipeline(Frame(rgb=image, K=K))
                call_ms.append(1000 * (time.perf_counter() - t0))
                metrics = {"id": sample.id, **frame_metrics(result, truth)}
                rows[framing][name].append(metrics)
                if args.per_frame:
                    per_frame.append({"framing": framing, "config": name, **metrics})

    report = {
        "data": str(index.root),
        "samples": len(samples),
        "canvas": list(CANVAS),
        "upper_fraction": args.upper_fraction,
        "upper_anchor": args.upper_anchor,
        "shape_mae_reference": "median over the intersection (pred - median(pred) + median(truth))",
        "z_true": "median truth depth of the visible person pixels in the frame",
        "configs": {name: {k: v for k, v in vars(cfg).items() if k in _SHOWN} for name, cfg in configs.items()},
        "results": {f: {name: aggregate(r) for name, r in rows[f].items()} for f in framings},
        "pipeline_call_ms_median": round(float(np.median(call_ms)), 1),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if args.per_frame:
        report["per_frame"] = per_frame
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


_SHOWN = ("person_source", "reference_depth", "edge_step_m", "full_frame")

if __name__ == "__main__":
    main()
