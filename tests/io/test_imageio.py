"""PNG/NPY/EXR reading and writing: channel order, bit depths, units, clear errors, atomic deterministic writes."""

import cv2
import numpy as np
import pytest

from rgbd_fusion_core.io import imageio


def test_rgb_round_trip_keeps_rgb_order(tmp_path):
    rgb = np.zeros((8, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[2, 3] = (10, 20, 30)
    path = tmp_path / "a.png"
    imageio.write_rgb(path, rgb)
    assert np.array_equal(imageio.read_rgb(path), rgb)
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 200]  # BGR on disk, as every PNG viewer expects


def test_depth_mm_round_trip_and_zero_means_none(tmp_path):
    """In memory NaN = no depth, on disk 0 (and 65535, the cameras' invalid marker, reads as none)."""
    depth = np.array([[0.0, 1.2344], [2.5, np.nan]], np.float32)
    path = tmp_path / "d.png"
    imageio.write_depth_mm(path, depth)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.tolist() == [[0, 1234], [2500, 0]]
    np.testing.assert_allclose(imageio.read_depth_m(path), [[np.nan, 1.234], [2.5, np.nan]], atol=1e-6)
    cv2.imwrite(str(path), np.array([[65535, 1000]], np.uint16))
    np.testing.assert_array_equal(imageio.read_depth_m(path), [[np.nan, 1.0]])


def test_depth_beyond_16_bit_range_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="16-bit"):
        imageio.write_depth_mm(tmp_path / "far.png", np.full((2, 2), 70.0))


def test_eight_bit_depth_png_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "depth8.png"
    cv2.imwrite(str(path), np.full((4, 4), 100, np.uint8))
    with pytest.raises(ValueError, match="16-bit.*depth8.png"):
        imageio.read_depth_m(path)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match="broken.png"):
        imageio.read_rgb(corrupt)
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        imageio.read_mask(tmp_path / "nothere.png")


def test_mask_must_be_single_channel(tmp_path):
    path = tmp_path / "m.png"
    imageio.write_rgb(path, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="single-channel.*m.png"):
        imageio.read_mask(path)
    imageio.write_mask(path, np.eye(4, dtype=bool))
    assert np.array_equal(imageio.read_mask(path), np.eye(4, dtype=bool))
    assert set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))) == {0, 255}


def test_metric_depth_npy_and_exr(tmp_path):
    depth = np.array([[0.0, 1.5], [np.inf, -2.0]], np.float32)
    np.save(tmp_path / "d.npy", depth)
    np.testing.assert_array_equal(imageio.read_depth_m(tmp_path / "d.npy", unit="m"), [[np.nan, 1.5], [np.nan] * 2])
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.npy"):
        imageio.read_depth_m(tmp_path / "bad.npy", unit="m")
    try:
        written = cv2.imwrite(str(tmp_path / "d.exr"), depth)
    except cv2.error:
        written = False
    if not written:  # this OpenCV build has no EXR codec: reading an .exr must say so clearly
        (tmp_path / "d.exr").write_bytes(bytes([0x76, 0x2F, 0x31, 0x01]) + bytes(64))  # the EXR magic number
        with pytest.raises(ValueError, match="cannot read EXR files; convert to .npy: .*d.exr"):
            imageio.read_depth_m(tmp_path / "d.exr", unit="m")
        return
    np.testing.assert_array_equal(imageio.read_depth_m(tmp_path / "d.exr", unit="m"), [[np.nan, 1.5], [np.nan] * 2])


def test_exr_without_a_codec_gives_the_clear_error(tmp_path, monkeypatch):
    (tmp_path / "d.exr").write_bytes(bytes([0x76, 0x2F, 0x31, 0x01]) + bytes(64))
    monkeypatch.setattr(imageio.cv2, "haveImageReader", lambda path: False)  # as in a build without OpenEXR
    with pytest.raises(ValueError, match="this OpenCV build cannot read EXR files; convert to .npy: .*d.exr"):
        imageio.read_depth_m(tmp_path / "d.exr", unit="m")


def test_writes_are_atomic_and_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    imageio.write_rgb(tmp_path / "x.png", rgb)
    first = (tmp_path / "x.png").read_bytes()
    imageio.write_rgb(tmp_path / "x.png", rgb)
    assert (tmp_path / "x.png").read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary files left behind


def test_colorize_depth_black_background_and_near_is_warm():
    depth = np.zeros((4, 4), np.float32)
    depth[1, 1], depth[2, 2] = 1.0, 3.0
    image = imageio.colorize_depth(depth)
    assert image[0, 0].tolist() == [0, 0, 0]
    near, far = image[1, 1].astype(int), image[2, 2].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # TURBO: red near, blue far
