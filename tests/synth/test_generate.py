"""The synthetic dataset generator: determinism across worker counts, resume, subject split, framing, errors."""

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import folder_bytes, generate_or_unavailable

pytest.importorskip("anny")
pytest.importorskip("warp")
pytest.importorskip("moderngl")

from rgbd_fusion_core.data.format import read_index, split_subjects  # noqa: E402
from rgbd_fusion_core.synth.generate import GeneratorConfig, generate, validate_config  # noqa: E402


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """2 subjects x 2 views, one subject per work unit (pose_batch 2) so two workers really split the work."""
    config = GeneratorConfig(
        out=tmp_path_factory.mktemp("synth") / "one_worker",
        subjects=2,
        views_per_subject=2,
        seed=11,
        test_fraction=0.5,
        pose_batch=2,
    )
    return generate_or_unavailable(config)


def test_layout_and_index(small_config):
    index = read_index(small_config.out)
    assert index.resolutions == (256, 64) and index.depth_unit == "mm"
    assert [s.id for s in index.samples] == ["s0000_v00", "s0000_v01", "s0001_v00", "s0001_v01"]
    sample = index.samples[0]
    assert sample.files[256]["rgb"] == "256/rgb/s0000_v00.png"
    np.testing.assert_allclose(sample.K[64][0, 0] * 4, sample.K[256][0, 0])
    for resolution in (256, 64):
        depth = cv2.imread(str(small_config.out / sample.files[resolution]["depth"]), cv2.IMREAD_UNCHANGED)
        rgb = cv2.imread(str(small_config.out / sample.files[resolution]["rgb"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(small_config.out / sample.files[resolution]["mask"]), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (resolution, resolution)
        assert rgb.shape == (resolution, resolution, 3) and rgb.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
        assert np.array_equal(mask > 0, depth > 0)
        foreground = depth[depth > 0]
        assert 500 < foreground.min() and foreground.max() < 8000  # a person 0.5-8 m away, in millimetres
    generator = json.loads((small_config.out / "dataset.json").read_text())["generator"]
    assert generator["seed"] == 11 and generator["args"]["views_per_subject"] == 2
    assert "workers" not in generator["args"]


PAPER_LOOK = dict(
    clothing_textures=False,
    multi_lights=False,
    camera_effects=False,
    varied_framing=False,
    occluder_share=0.0,
    background_jitter=False,
)


def test_person_is_framed_like_a_crop(small_config):
    """Full-body framing (varied framing off): bounding box of the 256 mask: longer side 70-95 % of the image
    (+-2 px), roughly centred."""
    small_config = replace(small_config, out=small_config.out.parent / "paper_framing", **PAPER_LOOK)
    generate(small_config, progress=False)
    index = read_index(small_config.out)
    for sample in index.samples:
        mask = cv2.imread(str(small_config.out / sample.files[256]["mask"]), cv2.IMREAD_UNCHANGED) > 0
        rows, cols = np.nonzero(mask)
        side = max(np.ptp(rows), np.ptp(cols)) + 1
        assert 0.70 * 256 - 2 <= side <= 0.95 * 256 + 2
        assert abs((rows.min() + rows.max()) / 2 - 127.5) < 0.2 * 256
        assert abs((cols.min() + cols.max()) / 2 - 127.5) < 0.2 * 256
        assert np.ptp(rows) > np.ptp(cols) * 0.8  # people are upright: taller than wide (arms may stretch)


def test_low_and_high_resolution_masks_agree(small_config):
    index = read_index(small_config.out)
    for sample in index.samples:
        high = cv2.imread(str(small_config.out / sample.files[256]["mask"]), cv2.IMREAD_UNCHANGED) / 255.0
        low = cv2.imread(str(small_config.out / sample.files[64]["mask"]), cv2.IMREAD_UNCHANGED) > 0
        downsampled = cv2.resize(high, (64, 64), interpolation=cv2.INTER_AREA) > 0.5
        iou = (downsampled & low).sum() / (downsampled | low).sum()
        assert iou > 0.9, f"{sample.id}: 64/256 mask IoU {iou:.3f}"


def test_same_seed_is_byte_identical(small_config):
    other = replace(small_config, out=small_config.out.parent / "again")
    generate(other, progress=False)
    assert folder_bytes(other.out) == folder_bytes(small_config.out)


@pytest.mark.slow  # two spawned workers each build anny: about 10-25 s on 2 busy cores
def test_same_seed_is_byte_identical_with_two_workers(small_config):
    other = replace(small_config, out=small_config.out.parent / "two_workers", workers=2)
    generate(other, progress=False)
    assert folder_bytes(other.out) == folder_bytes(small_config.out)


def test_resume_rewrites_only_missing_units_identically(small_config):
    copy = small_config.out.parent / "resume"
    shutil.copytree(small_config.out, copy)
    config = replace(small_config, out=copy)
    (copy / "256/rgb/s0001_v00.png").unlink()
    (copy / "meta/s0001_v01.json").unlink()
    untouched = {p: p.stat().st_mtime_ns for p in (copy / "256").rglob("s0000_*.png")}
    generate(config, progress=False)
    assert folder_bytes(copy) == folder_bytes(small_config.out)
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched  # the complete subject was skipped


def test_resume_with_other_settings_is_refused(small_config):
    with pytest.raises(ValueError, match="other settings.*seed"):
        generate(replace(small_config, seed=12), progress=False)


def test_split_is_by_subject_and_deterministic(small_config):
    index = read_index(small_config.out)
    assert len(index.splits["train"]) == len(index.splits["test"]) == 1
    assert not set(index.splits["train"]) & set(index.splits["test"])
    subjects = [f"s{i:04d}" for i in range(50)]
    split = split_subjects(subjects, 0.1, seed=3)
    assert split == split_subjects(subjects, 0.1, seed=3)
    assert len(split["test"]) == 5 and sorted(split["train"] + split["test"]) == subjects
    assert split != split_subjects(subjects, 0.1, seed=4)


def test_background_folder_and_no_rejection(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), (0, 200, 0), np.uint8))  # pure green (BGR)
    config = GeneratorConfig(
        out=tmp_path / "bg",
        subjects=1,
        views_per_subject=1,
        backgrounds="solid",  # photos replace the synthetic kind (with "mixed" they are one of the choices)
        background_dir=folder,
        reject_intersections=False,
        **PAPER_LOOK,  # no occluders, jitter or camera effects: the photo shows through unchanged
    )
    generate(config, progress=False)
    rgb = cv2.imread(str(tmp_path / "bg/256/rgb/s0000_v00.png"))
    mask = cv2.imread(str(tmp_path / "bg/256/mask/s0000_v00.png"), cv2.IMREAD_UNCHANGED) > 0
    assert np.all(rgb[~mask] == (0, 200, 0))
    assert json.loads((tmp_path / "bg/meta/s0000_v00.json").read_text())["info"]["pose_attempts"] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"subjects": 0}, "--subjects"),
        ({"views_per_subject": 0}, "--views-per-subject"),
        ({"resolution": 66}, "multiple of 4"),
        ({"resolution": 32}, "at least 64"),
        ({"test_fraction": 1.0}, "--test-fraction"),
        ({"backgrounds": "sky"}, "--backgrounds"),
        ({"age_range": "baby"}, "--age-range"),
    ],
)
def test_bad_settings_are_rejected(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        validate_config(replace(GeneratorConfig(out=tmp_path, subjects=1, views_per_subject=1), **change))


def test_bad_paths_are_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="output folder is not writable: .*sub"):
        validate_config(GeneratorConfig(out=blocker / "sub", subjects=1, views_per_subject=1))
    with pytest.raises(FileExistsError, match="output path exists and is not a folder"):
        validate_config(GeneratorConfig(out=blocker, subjects=1, views_per_subject=1))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        validate_config(
            GeneratorConfig(out=tmp_path / "o", subjects=1, views_per_subject=1, background_dir=tmp_path / "nowhere")
        )


def test_cli_reports_bad_flags_clearly(tmp_path, capsys):
    from rgbd_fusion_core.cli.main import main

    code = main(["make-dataset", "--out", str(tmp_path / "x"), "--subjects", "0", "--views-per-subject", "2"])
    assert code == 1
    assert "--subjects must be at least 1" in capsys.readouterr().err


def test_show_dataset_writes_a_labelled_grid(small_config, tmp_path):
    from rgbd_fusion_core.cli.main import main

    out = tmp_path / "grid.png"
    assert main(["show-dataset", str(small_config.out), "--out", str(out), "--split", "test", "--tile", "96"]) == 0
    grid = cv2.imread(str(out))
    assert grid.shape == (2 * 96, 2 * 96, 3)  # 2 test samples, each a row of RGB + depth (roughly square grid)
    depth_tile = grid[:96, 96:]
    assert (depth_tile.reshape(-1, 3).max(axis=0) > 0).all()  # the colour-mapped depth tile is not blank
    assert (depth_tile[-1, -1] == 0).all()  # background black
