"""Pose conditioning of stage 1: dataset format version 2 (the finder's annotation), the annotate command on a
version-1 dataset, the pose channels, a tiny training run with them, and the Pipeline feeding them."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from rgbd_fusion_core.config import load_stage_config, stage_config_from_dict, to_dict
from rgbd_fusion_core.data.dataset import RGBDDataset
from rgbd_fusion_core.data.format import FORMAT_VERSION, read_index
from rgbd_fusion_core.io.imageio import read_rgb
from rgbd_fusion_core.people.person import LEFT_SHOULDER, RIGHT_HIP, RIGHT_SHOULDER
from rgbd_fusion_core.people.pose_channels import keypoints_to_crop, pose_channels


def pose_config(stage: int = 1, **train):
    config = load_stage_config("tiny", stage)
    model = dataclasses.replace(config.model, cond_channels=6)
    return dataclasses.replace(
        config,
        conditioning="rgb_pose",
        model=model,
        augment=dataclasses.replace(config.augment, keypoint_dropout=0.5),
        train=dataclasses.replace(config.train, **train),
    )


@pytest.fixture(scope="module")
def annotated(rendered_dataset, tmp_path_factory):
    """The rendered dataset, written as version 1 (no person), then annotated by the CLI."""
    pytest.importorskip("mediapipe", reason="annotation needs the person finder (mediapipe==0.10.21)")
    from rgbd_fusion_core.cli.main import main

    root = tmp_path_factory.mktemp("annotated") / "data"
    shutil.copytree(rendered_dataset, root)
    index = json.loads((root / "dataset.json").read_text())
    index["version"] = 1
    (root / "dataset.json").write_text(json.dumps(index))
    assert main(["annotate", str(root), "--save-every", "5"]) == 0
    return root


def test_annotating_a_version_1_dataset_writes_version_2_with_the_finders_view(annotated):
    index = read_index(annotated)
    raw = json.loads((annotated / "dataset.json").read_text())
    assert raw["version"] == FORMAT_VERSION == 2
    assert all(s.person is not None for s in index.samples)
    found = [s for s in index.samples if s.person["found"]]
    # the randomised renders (occluders, close framings, blur) hide some people from the finder: how many is
    # measured on the training set (docs/RESULTS.md); here the mechanism: both kinds of entry are written
    assert found, "the finder found nobody in any render"
    missed = [s.person for s in index.samples if not s.person["found"]]
    assert all(person == {"finder": "mediapipe-0.10.21", "found": False} for person in missed)
    first = found[0].person
    assert np.asarray(first["keypoints_2d"]).shape == (33, 3) and (annotated / first["mask"]).is_file()
    # round trip: reading and writing keeps the annotation
    assert read_index(annotated).samples[0].to_json() == raw["samples"][0]


def test_demo_scores_keypoint_depth_order_against_the_truth_on_annotated_data(annotated, tiny_model_dir, tmp_path):
    from rgbd_fusion_core.cli.main import main

    out = tmp_path / "demo"
    args = ["demo", "--model", str(tiny_model_dir), "--data", str(annotated), "--out", str(out)]
    assert main([*args, "--limit", "3", "--steps1", "1", "--steps2", "1"]) == 0
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["keypoint_order_pairs"] > 0 and 0.0 <= summary["keypoint_order_vs_truth"] <= 1.0
    # the mask is filled from the skeleton, so every person found with both shoulders seen has depth at both
    assert summary["shoulder_width_frames"] > 0, summary
    assert summary["shoulder_width_ratio_median"] > 0 and 0.0 <= summary["shoulder_width_within_20_percent"] <= 1.0


def test_annotation_is_resumable(annotated, capsys):
    from rgbd_fusion_core.cli.main import main

    before = (annotated / "dataset.json").read_text()
    assert main(["annotate", str(annotated)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["annotated"] == 0
    assert (annotated / "dataset.json").read_text() == before


def test_a_corrupt_person_entry_is_refused_naming_the_sample(annotated, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(annotated, root)
    index = json.loads((root / "dataset.json").read_text())
    sample = next(s for s in index["samples"] if s["person"]["found"])
    sample["person"]["keypoints_2d"] = [[0, 0, 1]] * 5
    (root / "dataset.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=f"sample {sample['id']}: person.keypoints_2d"):
        read_index(root)


def test_pose_channels_mark_mask_skeleton_and_relative_depth():
    keypoints_2d = np.zeros((33, 3), np.float32)
    keypoints_3d = np.zeros((33, 3), np.float32)
    keypoints_2d[LEFT_SHOULDER] = (20, 10, 1.0)
    keypoints_2d[RIGHT_SHOULDER] = (40, 10, 1.0)
    keypoints_3d[LEFT_SHOULDER, 2] = -0.2  # the left shoulder is 0.4 m nearer than the right
    keypoints_3d[RIGHT_SHOULDER, 2] = 0.2
    keypoints_2d[RIGHT_HIP] = (40, 40, 0.1)  # not seen: no limb drawn to it
    mask = np.zeros((64, 64), bool)
    mask[5:50, 15:45] = True
    channels = pose_channels(mask, keypoints_2d, keypoints_3d, 64, depth_scale=1.9 / 1.5)
    assert channels.shape == (3, 64, 64) and channels.dtype == np.float32
    assert (channels[0][mask] == 1).all() and (channels[0][~mask] == -1).all()
    drawn = channels[1] > 0
    assert drawn[10, 20:41].all() and drawn.sum() < 60 and not drawn[20:, :].any()
    assert channels[2][10, 21] > 0.1 > -0.1 > channels[2][10, 39]  # nearer is larger
    empty = pose_channels(None, None, None, 64, 1.0)
    assert (empty[:2] == -1).all() and (empty[2] == 0).all()


def test_keypoints_move_into_the_crop_with_pixel_centres():
    keypoints = np.array([[100.0, 50.0, 0.9]] * 33, np.float32)
    moved = keypoints_to_crop(keypoints, (60, 40, 128), 64)
    np.testing.assert_allclose(moved[0], [(100 - 60 + 0.5) * 0.5 - 0.5, (50 - 40 + 0.5) * 0.5 - 0.5, 0.9])


def test_the_channel_count_must_match_the_conditioning():
    values = to_dict(pose_config())
    values["model"]["cond_channels"] = 3
    with pytest.raises(ValueError, match="cond_channels is 3, but stage 1 with conditioning 'rgb_pose' is fed 6"):
        stage_config_from_dict(values)
    assert load_stage_config("paper", 1).conditioning == "rgb"  # the paper's protocol stays RGB-only
    assert load_stage_config("small", 1).conditioning == "rgb_pose"


def test_tiny_training_run_with_pose_channels(annotated, tmp_path):
    from rgbd_fusion_core.models.checkpoint import load_stage_model
    from rgbd_fusion_core.training.trainer import train

    dataset = RGBDDataset(annotated, split="train")
    assert dataset[0]["pose64"].shape == (3, 64, 64)
    train(pose_config(steps=4, batch_size=2, checkpoint_every=4), annotated, tmp_path / "run", progress=False)
    config, _ = load_stage_model(tmp_path / "run")
    assert config.conditioning == "rgb_pose" and config.model.cond_channels == 6
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4 and np.isfinite(log[-1]["loss"])


def test_rgb_pose_training_refuses_an_unannotated_dataset(rendered_dataset, tmp_path):
    from rgbd_fusion_core.training.trainer import train

    with pytest.raises(ValueError, match="rgbd-fusion annotate"):
        train(pose_config(steps=1, batch_size=2), rendered_dataset, tmp_path / "run", progress=False)


def test_pipeline_feeds_the_finders_pose_to_a_pose_conditioned_stage_1(annotated, tmp_path):
    """A pose-conditioned stage 1 (untrained) gets the pose channels: its output changes with the keypoints."""
    from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
    from rgbd_fusion_core.inference.backends import make_backend
    from rgbd_fusion_core.inference.pipeline import Pipeline, Stage
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig
    from rgbd_fusion_core.models import build_denoiser

    torch.manual_seed(0)
    stages = []
    for config in (pose_config(1), load_stage_config("tiny", 2)):
        module = build_denoiser(config.model)
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0, 0.05)
        stages.append(Stage(config, make_backend("torch", config, module, "cpu"), GaussianDiffusion(config.diffusion)))
    pipeline = Pipeline(*stages, PipelineConfig(steps1=2, steps2=1))
    rgb = torch.zeros(1, 3, 64, 64)
    noise = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = pose_channels(None, None, None, 64, 1.0)
    mask = np.zeros((64, 64), bool)
    mask[10:50, 20:44] = True
    with_mask = pose_channels(mask, None, None, 64, 1.0)
    a = pipeline.stage1_depth(rgb, torch.from_numpy(plain)[None], noise)
    b = pipeline.stage1_depth(rgb, torch.from_numpy(with_mask)[None], noise)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pose channels"):
        pipeline.stage1_depth(rgb, None, noise)
    # the whole frame path: the finder's person -> crop -> pose channels -> stage 1
    from rgbd_fusion_core.inference.pipeline_io import Frame

    sample = read_index(annotated).samples[0]
    frame_rgb = read_rgb(annotated / sample.files[256]["rgb"])
    result = pipeline(Frame(frame_rgb, sample.K[256]))
    assert result.people_found == 1 and result.person_source == "finder"
