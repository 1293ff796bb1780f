"""Result files for users outside ROS: depth as 16-bit PNG (millimetres) or .npy (metres), point clouds as PLY.

Shared by the ``predict`` CLI and the bag tool's ``--export-dir``. Every writer is atomic: the bytes go to a
temporary file in the destination folder, which then replaces the destination (a crash never leaves half a
file under the final name). ``staged_directory`` does the same for a whole output folder (a bag, an export).
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rgbd_fusion_core.io.atomic import write_bytes_atomic
from rgbd_fusion_core.io.depth_units import metres_to_millimetres

PLY_VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def write_depth_png_mm(path: str | os.PathLike, depth_m: np.ndarray) -> Path:
    """(H, W) float metres -> 16-bit greyscale PNG in millimetres (0 = no depth). Returns the path."""
    from rgbd_fusion_core.io.imageio import encode_png

    write_bytes_atomic(path, encode_png(metres_to_millimetres(depth_m)))
    return Path(path)


def write_depth_npy(path: str | os.PathLike, depth_m: np.ndarray) -> Path:
    """(H, W) depth -> .npy of float32 metres (NaN = no depth, as given). Returns the path."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(depth_m, dtype=np.float32), allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> Path:
    """(N, 3) float32 points (metres) + (N, 3) uint8 RGB -> binary little-endian PLY point cloud.

    Vertex properties: float x, y, z and uchar red, green, blue (what Open3D, trimesh and MeshLab read).
    """
    points = np.asarray(points)
    colors = np.asarray(colors)
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f"need points (N, 3) and colors (N, 3), got {points.shape} and {colors.shape} for {path}")
    vertices = np.empty(len(points), dtype=PLY_VERTEX_DTYPE)
    for axis, name in enumerate("xyz"):
        vertices[name] = points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertices[name] = colors[:, channel]
    header = (
        "ply\n"
        "format binary_little_endian 1.0\n"
        "comment written by rgbd-fusion (metres, camera optical frame: x right, y down, z forward)\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        "end_header\n"
    )
    write_bytes_atomic(path, header.encode("ascii") + vertices.tobytes())
    return Path(path)


def staging_prefix(final: str | os.PathLike) -> str:
    """Name prefix of the hidden staging folders of ``final`` (a run killed hard leaves one behind)."""
    return f".{Path(final).name}.partial-"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_staging(final: str | os.PathLike) -> list[Path]:
    """Remove the staging folders of ``final`` left by killed runs (their pid, in the name, is no longer
    running); returns what was removed. Folders of running processes, or without a pid, are left alone."""
    final = Path(final)
    prefix = staging_prefix(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for candidate in final.parent.glob(f"{glob.escape(prefix)}*"):
        pid = candidate.name[len(prefix) :].split("-", 1)[0]
        if candidate.is_dir() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


@contextmanager
def staged_directory(
    final: str | os.PathLike, overwrite: bool = False, on_stale: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Build an output folder under a temporary name and move it to ``final`` only when the block succeeds.

    Yields a path that does not exist yet (same name as ``final``, inside a hidden staging folder next to it, so
    writers that name files after their folder produce the final names); the block creates it. On success the
    folder is renamed to ``final``; an existing ``final`` is replaced only when ``overwrite`` is set, otherwise
    ``FileExistsError``. On any error (including KeyboardInterrupt) the staging folder is removed.

    The staging folder's name holds this process's id; staging folders of ``final`` whose process is gone (a
    run killed by SIGKILL or a power cut) are removed first, each reported to ``on_stale``.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists already (use --overwrite to replace it)")
    for stale in remove_stale_staging(final):
        if on_stale is not None:
            on_stale(stale)
    staging = Path(tempfile.mkdtemp(prefix=f"{staging_prefix(final)}{os.getpid()}-", dir=final.parent))
    try:
        built = staging / final.name
        yield built
        if not built.exists():
            raise RuntimeError(f"nothing was written for {final}")
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} appeared while this run was writing it; left it untouched")
            os.replace(final, staging / ".replaced")
        os.replace(built, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
