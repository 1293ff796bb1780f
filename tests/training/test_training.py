"""Training: a tiny model overfits, exact resume, DDP on CPU, checkpoint errors."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from rgbd_fusion_core.config import load_stage_config
from rgbd_fusion_core.data.dataset import RGBDDataset
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.models.checkpoint import CheckpointError, load_stage_model, load_training_state, save_stage_model
from rgbd_fusion_core.training.trainer import train


def tiny(stage, **train_overrides):
    config = load_stage_config("tiny", stage)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train_overrides))


def denoising_error(run_dir, data_dir):
    """Mean simple loss of the EMA model on fixed noise/timesteps over the training split."""
    config, model = load_stage_model(run_dir)
    diffusion = GaussianDiffusion(config.diffusion)
    dataset = RGBDDataset(data_dir, split="train", depth_space=config.depth_space)
    g = torch.Generator().manual_seed(0)
    total = 0.0
    with torch.no_grad():
        for i in range(4):
            s = dataset[i]
            x0, cond = s["depth64"][None], s["rgb64"][None]
            t = torch.randint(0, diffusion.num_timesteps, (8,), generator=g)
            noise = torch.randn((8, *x0.shape[1:]), generator=g)
            x0, cond = x0.expand(8, -1, -1, -1), cond.expand(8, -1, -1, -1)
            total += diffusion.training_losses(model, x0, cond, t, noise)["mse"].mean().item()
    return total / 4


def test_tiny_model_overfits_four_samples(rendered_dataset, tmp_path):
    train(tiny(1, steps=1, batch_size=4, lr=3e-3, warmup_steps=1), rendered_dataset, tmp_path / "start", progress=False)
    before = denoising_error(tmp_path / "start", rendered_dataset)
    train(
        tiny(1, steps=60, batch_size=4, lr=5e-3, warmup_steps=5, ema_decay=0.8, checkpoint_every=60),
        rendered_dataset,
        tmp_path / "run",
        progress=False,
    )
    after = denoising_error(tmp_path / "run", rendered_dataset)
    assert after < 0.5 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 60 and log[-1]["loss"] < log[0]["loss"]


@pytest.mark.parametrize("stage", [1, 2])
def test_killed_and_resumed_run_equals_uninterrupted(rendered_dataset, tmp_path, stage):
    config = tiny(stage, steps=6, checkpoint_every=3, batch_size=2)
    train(config, rendered_dataset, tmp_path / "full", progress=False)
    train(config, rendered_dataset, tmp_path / "split", progress=False, stop_at=3)
    assert load_training_state(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    train(config, rendered_dataset, tmp_path / "split", progress=False, resume=True)
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    state_a = load_training_state(tmp_path / "full" / "checkpoint.pt")
    state_b = load_training_state(tmp_path / "split" / "checkpoint.pt")
    for key in state_a["model"]:
        assert torch.equal(state_a["model"][key], state_b["model"][key]), key


def test_fine_tuning_starts_from_the_given_models_weights(rendered_dataset, tmp_path):
    train(tiny(1, steps=2, batch_size=2, lr=1e-2, warmup_steps=1), rendered_dataset, tmp_path / "base", progress=False)
    still = tiny(1, steps=1, batch_size=2, lr=1e-9, warmup_steps=1)
    train(still, rendered_dataset, tmp_path / "tuned", progress=False, init_from=tmp_path / "base")
    train(still, rendered_dataset, tmp_path / "fresh", progress=False)
    base = load_stage_model(tmp_path / "base")[1].state_dict()  # the EMA weights inference would load
    for run, near_base in (("tuned", True), ("fresh", False)):
        weights = load_training_state(tmp_path / run / "checkpoint.pt")["model"]
        gap = max((weights[k] - base[k]).abs().max().item() for k in base)
        assert (gap < 1e-5) == near_base, (run, gap)
    with pytest.raises(CheckpointError, match="stage"):
        train(tiny(2, steps=1, batch_size=2), rendered_dataset, tmp_path / "wrong", init_from=tmp_path / "base")
    with pytest.raises(ValueError, match="--resume"):
        train(still, rendered_dataset, tmp_path / "tuned", resume=True, init_from=tmp_path / "base")


def test_existing_run_is_not_overwritten(rendered_dataset, tmp_path):
    config = tiny(1, steps=1, batch_size=2)
    train(config, rendered_dataset, tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, rendered_dataset, tmp_path / "run", progress=False)


def test_two_process_ddp_on_cpu(rendered_dataset, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "rgbd_fusion_core.cli.main",
        "train",
        "--stage",
        "1",
        "--config",
        "tiny",
        "--data",
        str(rendered_dataset),
        "--out",
        str(tmp_path / "ddp"),
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--no-progress",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    state = load_training_state(tmp_path / "ddp" / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] == 4 and len(state["generators"]) == 2


def test_corrupt_and_mismatched_checkpoints_give_clear_errors(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_stage_model(bad)
    with pytest.raises(CheckpointError, match="stage-1 model, expected stage 2"):
        load_stage_model(tiny_model_dir / "stage1.safetensors", expected_stage=2)
    # weights that do not fit the stored config
    _, model = load_stage_model(tiny_model_dir / "stage1.safetensors")
    other = load_stage_config("small", 1)
    save_stage_model(tmp_path / "mismatch.safetensors", other, model.state_dict())
    with pytest.raises(CheckpointError, match="do not match"):
        load_stage_model(tmp_path / "mismatch.safetensors")
    corrupt_state = tmp_path / "checkpoint.pt"
    corrupt_state.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_training_state(corrupt_state)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        load_training_state(tmp_path / "missing" / "checkpoint.pt")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("stage1:\n  train: {steps: 5\n", "not valid YAML: while parsing a flow mapping"),
        ("stage1:\n  train:\n    steps: -5\n", "stage1.train.steps must be >= 1, got -5"),
        ("stage1:\n  train:\n    batch_size: 0\n", "stage1.train.batch_size must be >= 1, got 0"),
        ("stage1:\n  train:\n    lr: fast\n", "stage1.train.lr must be a positive number, got 'fast'"),
        ("stage1:\n  train:\n    stpes: 10\n", "stage1.train: unknown key(s) ['stpes']"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
    ids=["yaml_syntax", "negative_steps", "zero_batch", "text_lr", "unknown_key", "not_a_mapping"],
)
def test_bad_training_config_fails_before_any_work_naming_file_and_field(tmp_path, capsys, text, problem):
    """A malformed YAML gave a raw traceback; steps -5 / batch_size 0 exited 0 having trained nothing."""
    from rgbd_fusion_core.cli.main import main

    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    code = main(["train", "--stage", "1", "--config", str(config), "--data", str(tmp_path / "none"), "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 1 and f"{config}: " in error and problem in error, error
    assert len(error.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("flag", ["--steps", "--batch-size"])
def test_non_positive_steps_or_batch_flags_are_refused(tmp_path, capsys, flag):
    from rgbd_fusion_core.cli.main import main

    out = tmp_path / "run"
    args = ["train", "--stage", "1", "--config", "tiny", "--data", str(tmp_path), "--out", str(out), flag, "0"]
    assert main(args) == 1
    assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err and not out.exists()
