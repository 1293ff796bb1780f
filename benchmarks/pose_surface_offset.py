"""How far the pose z_ref lies from the true median depth of the person's pixels, by distance; prints JSON.

    python benchmarks/pose_surface_offset.py data/synth_v3 --split train      # where SURFACE_OFFSET_M came from
    python benchmarks/pose_surface_offset.py /tmp/val_fill --split test       # checking it on other renders

On an annotated dataset (``rgbd-fusion annotate``: the finder's keypoints stored per render) each found person's
2D and metric 3D keypoints are fitted through the render's true K (people/pose_scale.py) and compared with the
truth's reference depth (median depth of the person's pixels). ``keypoints`` is the fitted keypoints' median
depth (pose_reference_depth without the surface offset), ``z_ref`` what the Pipeline uses (with it). A constant
error in metres over distance is an offset (the keypoints are joint centres inside the body, the depth map sees
its surface); an error growing with distance would be a scale error of the finder's 3D keypoints instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rgbd_fusion_core.data.format import read_index
from rgbd_fusion_core.geometry.depth_space import reference_depth
from rgbd_fusion_core.io.imageio import read_depth_m
from rgbd_fusion_core.people.pose_scale import SURFACE_OFFSET_M, pose_reference_depth

BINS_M = (0.8, 1.2, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6, 4.4)


def errors(data: Path, split: str, limit: int | None) -> np.ndarray:
    """(N, 3): true reference depth, the fitted keypoints' median depth and z_ref (metres) of every render whose
    person the finder found."""
    index = read_index(data)
    rows = []
    samples = index.samples if split == "all" else index.split_samples(split)
    for sample in samples[:limit]:
        if not (sample.person and sample.person["found"]):
            continue
        kp2, kp3 = (np.asarray(sample.person[key], np.float64) for key in ("keypoints_2d", "keypoints_3d"))
        K = np.asarray(sample.K[256], np.float64)
        keypoints_z = pose_reference_depth(kp2, kp3, K, surface_offset_m=0.0)
        if keypoints_z is not None:
            truth = read_depth_m(data / sample.files[256]["depth"], unit=index.depth_unit)
            rows.append((reference_depth(truth), keypoints_z, pose_reference_depth(kp2, kp3, K)))
    if not rows:
        raise ValueError(f"{data}: no found person with keypoints in split {split!r} (run rgbd-fusion annotate)")
    return np.array(rows)


def summary(true_m: np.ndarray, estimate_m: np.ndarray) -> dict:
    error = estimate_m - true_m
    out = {
        "frames": len(error),
        "median_error_m": round(float(np.median(error)), 4),
        "median_relative_error": round(float(np.median(error / true_m)), 4),
        "median_abs_relative_error": round(float(np.median(np.abs(error) / true_m)), 4),
        "least_squares_error_m_vs_distance": [round(v, 4) for v in np.polyfit(true_m, error, 1)[::-1]],
        "by_distance": [],
    }
    for low, high in zip(BINS_M[:-1], BINS_M[1:]):
        inside = (true_m >= low) & (true_m < high)
        if inside.sum() >= 10:
            out["by_distance"].append(
                {
                    "from_m": low,
                    "to_m": high,
                    "frames": int(inside.sum()),
                    "median_error_m": round(float(np.median(error[inside])), 4),
                }
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="an annotated dataset folder")
    parser.add_argument("--split", default="train", help="train, test or all (default: train)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many renders of the split")
    args = parser.parse_args()
    try:
        rows = errors(args.data, args.split, args.limit)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    report = {
        "data": str(args.data),
        "split": args.split,
        "surface_offset_m": SURFACE_OFFSET_M,
        "keypoints": summary(rows[:, 0], rows[:, 1]),
        "z_ref": summary(rows[:, 0], rows[:, 2]),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
