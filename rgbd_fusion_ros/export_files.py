"""The bag tool's ``--export-dir``: plain files per frame for users outside ROS, plus an index CSV.

Per processed frame ``NNNNNN``: ``NNNNNN_depth_mm.png`` (16-bit, millimetres, 0 = no depth),
``NNNNNN_depth_m.npy`` (float32 metres, NaN = no depth), ``NNNNNN_points.ply`` (binary PLY, metres, camera
optical frame, RGB). The depth maps are the 256x256 crop; ``index.csv`` gives, per row, the input stamp and
frame id, the file names, the crop's pinhole intrinsics (fx, fy, cx, cy in crop pixels), the crop box in
input pixels, the reference depth and the number of points.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rgbd_fusion_core.inference.pipeline_io import PipelineResult
from rgbd_fusion_core.io.outputs import write_depth_npy, write_depth_png_mm, write_ply

INDEX_NAME = "index.csv"
INDEX_COLUMNS = (
    "frame",
    "stamp_ns",
    "stamp",
    "frame_id",
    "depth_png",
    "depth_npy",
    "ply",
    "width",
    "height",
    "fx",
    "fy",
    "cx",
    "cy",
    "crop_x0",
    "crop_y0",
    "crop_size",
    "z_ref_m",
    "z_ref_source",
    "points",
)


class ExportWriter:
    """Writes the files of each frame into ``folder`` (created here) and one ``index.csv`` row per frame."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True)
        self.index_file = (self.folder / INDEX_NAME).open("w", newline="", encoding="utf-8")
        self.index = csv.writer(self.index_file)
        self.index.writerow(INDEX_COLUMNS)
        self.count = 0

    def write(self, stamp_ns: int, frame_id: str, result: PipelineResult) -> None:
        """The depth PNG, depth .npy and PLY of one frame, and its index row."""
        name = f"{self.count:06d}"
        depth_png, depth_npy, ply = f"{name}_depth_mm.png", f"{name}_depth_m.npy", f"{name}_points.ply"
        write_depth_png_mm(self.folder / depth_png, result.depth)
        write_depth_npy(self.folder / depth_npy, result.depth)
        write_ply(self.folder / ply, result.points, result.colors)
        K = result.K_crop
        x0, y0, size = result.crop_box
        height, width = result.depth.shape
        self.index.writerow(
            (
                name,
                stamp_ns,
                f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}",
                frame_id,
                depth_png,
                depth_npy,
                ply,
                width,
                height,
                f"{K[0, 0]:.6f}",
                f"{K[1, 1]:.6f}",
                f"{K[0, 2]:.6f}",
                f"{K[1, 2]:.6f}",
                x0,
                y0,
                size,
                f"{result.z_ref:.6f}",
                result.z_ref_source,
                len(result.points),
            )
        )
        self.count += 1

    def close(self) -> None:
        self.index_file.close()

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
