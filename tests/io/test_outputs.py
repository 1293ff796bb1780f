"""Result file writers: 16-bit PNG depth in mm, .npy depth in metres, binary PLY point clouds."""

import cv2
import numpy as np
import pytest

from rgbd_fusion_core.io.depth_units import metres_to_millimetres
from rgbd_fusion_core.io.outputs import (
    staged_directory,
    write_depth_npy,
    write_depth_png_mm,
    write_ply,
)


def test_depth_png_holds_millimetres_with_zero_for_no_depth(tmp_path):
    depth = np.array([[1.2344, 2.0], [np.nan, 70.0], [-1.0, 0.0]], dtype=np.float32)
    path = write_depth_png_mm(tmp_path / "depth.png", depth)
    read = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint16 and read.shape == (3, 2)
    np.testing.assert_array_equal(read, [[1234, 2000], [0, 0], [0, 0]])


def test_millimetres_round_to_nearest():
    # 65535 is the cameras' "invalid" marker: never written, so 65.535 m and beyond are "no depth"
    np.testing.assert_array_equal(
        metres_to_millimetres(np.array([0.0015, 65.534, 65.535, np.nan, -1])), [2, 65534, 0, 0, 0]
    )


def test_depth_npy_round_trips_float_metres_and_nan(tmp_path):
    depth = np.random.default_rng(0).uniform(0.5, 4.0, (5, 7)).astype(np.float32)
    depth[1, 2] = np.nan
    read = np.load(write_depth_npy(tmp_path / "depth.npy", depth))
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, depth)  # NaN compares equal position-wise here


def test_ply_is_binary_little_endian_and_trimesh_reads_points_and_colors(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    path = write_ply(tmp_path / "cloud.ply", points, colors)
    raw = path.read_bytes()
    header, body = raw.split(b"end_header\n", 1)
    assert b"format binary_little_endian 1.0" in header and b"element vertex 50" in header
    assert len(body) == 50 * 15  # 3 float32 + 3 uchar
    cloud = trimesh.load(path)
    np.testing.assert_allclose(cloud.vertices, points, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], colors)


def test_empty_ply_is_valid(tmp_path):
    path = write_ply(tmp_path / "empty.ply", np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    assert b"element vertex 0\n" in path.read_bytes()


def test_ply_refuses_mismatched_colors_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="colors"):
        write_ply(tmp_path / "bad.ply", np.zeros((4, 3), np.float32), np.zeros((3, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_appears_only_when_the_block_succeeds(tmp_path):
    final = tmp_path / "out"
    with staged_directory(final) as building:
        assert building.name == "out" and not building.exists()
        building.mkdir()
        (building / "data.txt").write_text("complete")
        assert not final.exists()
    assert (final / "data.txt").read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


def test_staged_directory_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with staged_directory(final) as building:
            building.mkdir()
            (building / "half.txt").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_refuses_existing_output_unless_overwrite(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with staged_directory(final):
            pass
    assert (final / "old.txt").exists()
    with staged_directory(final, overwrite=True) as building:
        building.mkdir()
        (building / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
