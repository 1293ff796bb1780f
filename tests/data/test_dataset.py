"""RGBDDataset: tensors, depth-space round trip, flips, derived 64 x 64 view, metric .npy depth, clear errors."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from conftest import generate_or_unavailable

pytest.importorskip("anny")
pytest.importorskip("warp")
pytest.importorskip("moderngl")

from rgbd_fusion_core.data.dataset import RGBDDataset  # noqa: E402
from rgbd_fusion_core.geometry.camera import scale_intrinsics  # noqa: E402
from rgbd_fusion_core.geometry.depth_space import DepthSpace  # noqa: E402
from rgbd_fusion_core.io.imageio import read_depth_m  # noqa: E402
from rgbd_fusion_core.synth.generate import GeneratorConfig  # noqa: E402


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synth"
    config = GeneratorConfig(out=root, subjects=2, views_per_subject=2, seed=5, test_fraction=0.5)
    generate_or_unavailable(config)
    return root


@pytest.fixture
def editable_copy(dataset_root, tmp_path):
    """A private copy of the dataset plus helpers to edit its index."""
    root = tmp_path / "copy"
    shutil.copytree(dataset_root, root)
    index_path = root / "dataset.json"

    def edit(change):
        data = json.loads(index_path.read_text())
        change(data)
        index_path.write_text(json.dumps(data))

    return root, edit


def test_item_tensors(dataset_root):
    dataset = RGBDDataset(dataset_root, "train")
    assert len(dataset) == 2
    item = dataset[0]
    shapes = {"rgb64": (3, 64, 64), "rgb256": (3, 256, 256), "depth64": (1, 64, 64), "depth256": (1, 256, 256)}
    shapes |= {"mask64": (1, 64, 64), "mask256": (1, 256, 256), "K64": (3, 3), "K256": (3, 3), "z_ref": ()}
    for key, shape in shapes.items():
        assert item[key].shape == shape and item[key].dtype == torch.float32, key
    assert item["subject"] in dataset.index.splits["train"] and item["id"].startswith(item["subject"])
    for resolution in (64, 256):
        rgb, depth, mask = item[f"rgb{resolution}"], item[f"depth{resolution}"], item[f"mask{resolution}"]
        assert rgb.min() >= -1 and rgb.max() <= 1
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert (depth[mask == 0] == -1).all()
        assert (depth[mask == 1] >= DepthSpace().foreground_min).all()
    metres = read_depth_m(dataset_root / dataset.samples[0].files[256]["depth"])
    assert item["z_ref"].item() == pytest.approx(np.median(metres[metres > 0]), abs=1e-6)
    np.testing.assert_allclose(item["K64"].numpy(), scale_intrinsics(item["K256"].numpy(), 256, 64), rtol=1e-6)


def test_network_depth_round_trips_to_metres(dataset_root):
    space = DepthSpace()
    dataset = RGBDDataset(dataset_root, "all", depth_space=space)
    for index, sample in enumerate(dataset.samples):
        item = dataset[index]
        for resolution in (64, 256):
            truth = read_depth_m(dataset_root / sample.files[resolution]["depth"])
            back = space.to_metres(item[f"depth{resolution}"][0], item["z_ref"]).numpy()
            foreground = truth > 0
            assert np.isfinite(back[foreground]).all() and np.isnan(back[~foreground]).all()
            # inside the window the mapping is exact; beyond it depth clips to the window's edge
            inside = foreground & (np.abs(truth - item["z_ref"].item()) < space.window_m / 2)
            assert inside.mean() > 0.8 * foreground.mean()
            assert np.abs(back[inside] - truth[inside]).max() < 1e-3


def test_horizontal_flip_mirrors_images_and_principal_point(dataset_root):
    plain = RGBDDataset(dataset_root, "test")[0]
    torch.manual_seed(0)
    flipped = None
    dataset = RGBDDataset(dataset_root, "test", augment_flip=True)
    for _ in range(20):  # each item flips with probability 1/2
        candidate = dataset[0]
        if not torch.equal(candidate["rgb256"], plain["rgb256"]):
            flipped = candidate
            break
    assert flipped is not None
    for resolution in (64, 256):
        for key in ("rgb", "depth", "mask"):
            name = f"{key}{resolution}"
            assert torch.equal(flipped[name], plain[name].flip(-1)), name
        assert flipped[f"K{resolution}"][0, 2] == pytest.approx(resolution - 1 - plain[f"K{resolution}"][0, 2].item())


def test_low_resolution_is_derived_when_missing(editable_copy):
    root, edit = editable_copy
    rendered = RGBDDataset(root, "all")[0]

    def only_256(data):
        data["resolutions"] = [256]
        for sample in data["samples"]:
            del sample["files"]["64"], sample["K"]["64"]

    edit(only_256)
    shutil.rmtree(root / "64")
    derived = RGBDDataset(root, "all")[0]
    high, low = rendered["mask64"] > 0, derived["mask64"] > 0
    assert (high & low).sum() / (high | low).sum() > 0.8
    both = high & low
    space = DepthSpace()
    difference = space.to_metres(derived["depth64"], derived["z_ref"]) - space.to_metres(
        rendered["depth64"], rendered["z_ref"]
    )
    assert difference[both].abs().median() < 0.02  # metres, away from depth edges
    np.testing.assert_allclose(derived["K64"].numpy(), rendered["K64"].numpy(), rtol=1e-6)
    assert torch.equal(derived["rgb256"], rendered["rgb256"])


def test_metric_npy_depth(editable_copy):
    root, edit = editable_copy
    reference = RGBDDataset(root, "all")[0]
    for png in (root / "256/depth").glob("*.png"):
        np.save(png.with_suffix(".npy"), read_depth_m(png))
        png.unlink()

    def to_metres(data):  # a single-resolution dataset with float depth in metres, as a real one might be
        data["depth_unit"] = "m"
        data["resolutions"] = [256]
        for sample in data["samples"]:
            sample["files"]["256"]["depth"] = sample["files"]["256"]["depth"].replace(".png", ".npy")
            del sample["files"]["64"], sample["K"]["64"]

    edit(to_metres)
    item = RGBDDataset(root, "all")[0]
    assert torch.allclose(item["depth256"], reference["depth256"], atol=1e-5)


def _break(root, edit, case):
    """Apply one kind of damage; returns (expected exception, text it must contain, raised at construction)."""
    sample = json.loads((root / "dataset.json").read_text())["samples"][0]
    files = sample["files"]["256"]
    if case == "missing depth":
        (root / files["depth"]).unlink()
        return FileNotFoundError, files["depth"], True
    if case == "8-bit depth":
        cv2.imwrite(str(root / files["depth"]), np.full((256, 256), 7, np.uint8))
        return ValueError, "16-bit", False
    if case == "size mismatch":
        cv2.imwrite(str(root / files["mask"]), np.zeros((128, 128), np.uint8))
        return ValueError, files["mask"], False
    if case == "corrupt rgb":
        (root / files["rgb"]).write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
        return ValueError, files["rgb"], False
    if case == "missing intrinsics":
        edit(lambda data: data["samples"][0]["K"].pop("64"))
        return ValueError, "K[64]", True
    if case == "no index":
        (root / "dataset.json").unlink()
        return FileNotFoundError, "dataset.json", True
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["missing depth", "8-bit depth", "size mismatch", "corrupt rgb", "missing intrinsics", "no index"]
)
def test_damaged_datasets_fail_naming_the_problem(editable_copy, case):
    root, edit = editable_copy
    error, text, at_construction = _break(root, edit, case)
    if at_construction:
        with pytest.raises(error, match=text.replace("[", r"\[").replace("]", r"\]")):
            RGBDDataset(root, "all")
        return
    dataset = RGBDDataset(root, "all")
    with pytest.raises(error, match=text):
        dataset[0]


def test_unknown_and_empty_splits(editable_copy):
    root, edit = editable_copy
    with pytest.raises(ValueError, match="unknown split 'val'"):
        RGBDDataset(root, "val")
    edit(lambda data: data["splits"].update(test=[]))
    with pytest.raises(ValueError, match="split 'test'.*no samples"):
        RGBDDataset(root, "test")


def test_batches_through_a_dataloader(dataset_root):
    batch = next(iter(torch.utils.data.DataLoader(RGBDDataset(dataset_root, "all"), batch_size=2)))
    assert batch["depth64"].shape == (2, 1, 64, 64) and batch["z_ref"].shape == (2,) and len(batch["id"]) == 2
