"""Writing one PipelineResult as files: depth.png (16-bit mm), depth.npy (float metres), points.ply, figure.png
and result.json (intrinsics, crop, reference depth, timings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import PipelineResult
from rgbd_fusion_core.io.atomic import write_text_atomic
from rgbd_fusion_core.io.imageio import write_rgb
from rgbd_fusion_core.io.outputs import write_depth_npy, write_depth_png_mm, write_ply
from rgbd_fusion_core.io.visualize import result_figure


def write_result(folder: str | Path, result: PipelineResult, prefix: str = "") -> tuple[dict, np.ndarray]:
    """Write the files; returns (the result.json summary, the figure image (256, 768, 3) uint8)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "depth_png_mm": write_depth_png_mm(folder / f"{prefix}depth.png", result.depth),
        "depth_npy_m": write_depth_npy(folder / f"{prefix}depth.npy", result.depth),
        "points_ply": write_ply(folder / f"{prefix}points.ply", result.points, result.colors),
    }
    figure = folder / f"{prefix}figure.png"
    figure_image = result_figure(result)
    write_rgb(figure, figure_image)
    files["figure_png"] = figure
    if result.depth_full is not None:
        files["depth_full_npy_m"] = write_depth_npy(folder / f"{prefix}depth_full.npy", result.depth_full)
    if result.uncertainty is not None:
        files["uncertainty_npy_m"] = write_depth_npy(folder / f"{prefix}uncertainty.npy", result.uncertainty)
    summary = {
        "K_crop": result.K_crop.tolist(),
        "crop_box_xy_size": list(result.crop_box),
        "people_found": result.people_found,
        "z_ref_m": result.z_ref,
        "z_ref_source": result.z_ref_source,
        "nfe": result.nfe,
        "points": int(len(result.points)),
        "timings_ms": result.timings_ms,
        "files": {k: str(Path(v).name) for k, v in files.items()},
    }
    write_text_atomic(folder / f"{prefix}result.json", json.dumps(summary, indent=2) + "\n")
    return summary, figure_image
