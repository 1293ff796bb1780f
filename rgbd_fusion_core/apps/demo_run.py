"""The demo: Pipeline on frames with ground truth (dataset format), per-frame outputs, metrics and timings.

Everything is scored in the input frame (the full-frame depth: each person's crop pasted back), so a crop placed
by the person finder is compared with the truth pixel for pixel. Shape metrics use the true reference depth
(what the networks predict is shape relative to z_ref); the absolute metric error and the z_ref error show how
well the chosen reference-depth strategy found the scale. The flying-pixel share is the share of person pixels
more than 0.4 m behind the person's median depth (prediction and truth). On annotated datasets (format 2), the
keypoint depth order against the truth is scored at the person finder's stored keypoints, and so is the shoulder
width of the cloud (evaluation/shoulder_width.py): the predicted width over the truth's at the same keypoints.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from rgbd_fusion_core.evaluation.keypoint_order import order_against_truth
from rgbd_fusion_core.evaluation.scores import Accumulator, score
from rgbd_fusion_core.evaluation.shoulder_width import shoulder_width
from rgbd_fusion_core.geometry.depth_edges import behind_share
from rgbd_fusion_core.geometry.depth_space import reference_depth
from rgbd_fusion_core.inference.pipeline import Pipeline
from rgbd_fusion_core.inference.pipeline_io import Frame
from rgbd_fusion_core.io.imageio import read_depth_m, read_rgb, write_rgb
from rgbd_fusion_core.io.result_files import write_result

BUNDLED_FRAMES = Path(__file__).parents[1] / "demo_frames"


def run_demo(pipeline: Pipeline, data: Path, split: str, out: Path, limit: int | None = None) -> dict:
    from rgbd_fusion_core.data.format import read_index

    index = read_index(data)
    samples = index.samples if split == "all" else index.split_samples(split)
    samples = samples[:limit] if limit else samples
    if not samples:
        raise ValueError(f"{data}: no frames in split {split!r}")
    pipeline = pipeline.with_config(dataclasses.replace(pipeline.config, full_frame=True))
    space = pipeline.space
    shape, absolute = Accumulator(), Accumulator()
    times, z_errors, figures, nobody, sources = [], [], [], 0, Counter()
    order_agree = order_pairs = 0
    width_ratios = []  # predicted / true shoulder width of the cloud, where both have depth at both shoulders
    pipeline(Frame(read_rgb(data / samples[0].files[256]["rgb"]), np.asarray(samples[0].K[256])))  # warm-up
    for sample in samples:
        rgb = read_rgb(data / sample.files[256]["rgb"])
        truth_m = read_depth_m(data / sample.files[256]["depth"], unit=index.depth_unit)
        K = np.asarray(sample.K[256], dtype=np.float64)
        started = time.perf_counter()
        result = pipeline(Frame(rgb=rgb, K=K))
        times.append(time.perf_counter() - started)
        z_true = reference_depth(truth_m)
        predicted = result.depth_full
        # shape: prediction and truth in network space around the TRUE z_ref
        pred_net = torch.from_numpy(space.to_network(predicted, result.z_ref))[None, None]
        truth_net = torch.from_numpy(space.to_network(truth_m, z_true))[None, None]
        shape.add(score(pred_net, truth_net, torch.tensor([z_true]), torch.from_numpy(K)[None], space))
        # absolute: metres as predicted (scale from the pipeline's reference-depth strategy)
        diff = np.abs(predicted - truth_m)
        both = np.isfinite(diff)
        absolute.add(
            {
                "mae_mm": 1000 * float(diff[both].mean()) if both.any() else float("nan"),
                "flying_share": behind_share(predicted),
                "flying_share_truth": behind_share(truth_m),
            }
        )
        z_errors.append(abs(result.z_ref - z_true))  # NaN when nobody was found
        sources[result.z_ref_source] += 1
        if sample.person and sample.person["found"]:
            agree, pairs = order_against_truth(predicted, truth_m, sample.person["keypoints_2d"])
            order_agree, order_pairs = order_agree + agree, order_pairs + pairs
            widths = [shoulder_width(d, K, sample.person["keypoints_2d"])[0] for d in (predicted, truth_m)]
            if None not in widths and widths[1] > 0:
                width_ratios.append(widths[0] / widths[1])
        nobody += result.people_found == 0
        figures.append(write_result(out / sample.id, result)[1])
    write_rgb(out / "figure.png", np.concatenate(figures[:8], axis=0))
    m = shape.means()
    ms = 1000 * float(np.median(times))
    summary = {
        "frames": len(samples),
        "nfe_per_frame": result.nfe,
        "ms_per_frame_median": round(ms, 1),
        "frames_per_s": round(1000 / ms, 2),
        "backend": pipeline.backend,
        "device": str(pipeline.device),
        "iou": round(m["iou"], 4),
        "mae": round(m["mae"], 4),
        "mse": round(m["mse"], 4),
        "mae_mm_shape": round(m["mae_mm"], 1),
        "rmse_mm_shape": round(m["rmse_mm"], 1),
        "abs_rel_shape": round(m["abs_rel"], 4),
        "chamfer_mm_shape": round(m["chamfer_mm"], 1),
        "mae_mm_absolute": round(absolute.means()["mae_mm"], 1),
        "flying_share": round(absolute.means()["flying_share"], 4),
        "flying_share_truth": round(absolute.means()["flying_share_truth"], 4),
        "frames_with_nobody_found": nobody,
        "z_ref_error_m_median": round(float(np.nanmedian(z_errors)), 3) if nobody < len(samples) else None,
        "z_ref_sources": dict(sources),  # frames per source of the scale ("none": nobody found)
        "keypoint_order_vs_truth": round(order_agree / order_pairs, 4) if order_pairs else None,
        "keypoint_order_pairs": order_pairs,
        "shoulder_width_ratio_median": round(float(np.median(width_ratios)), 3) if width_ratios else None,
        "shoulder_width_within_20_percent": (
            round(float(np.mean(np.abs(np.subtract(width_ratios, 1.0)) <= 0.2)), 3) if width_ratios else None
        ),
        "shoulder_width_frames": len(width_ratios),
    }
    return {"summary": summary, "shape_metrics": m, "data": str(data), "split": split}
