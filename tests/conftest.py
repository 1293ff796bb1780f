"""Shared fixtures: tiny untrained models (seconds to build) for plumbing tests."""

import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def unavailable(reason: str):
    """Skip a test whose machine lacks something (EGL rendering, say) with the reason shown; under CI
    (``RGBD_FUSION_REQUIRE_ALL=1``, set by .ci/run) fail instead, so a green run never quietly covers less."""
    if os.environ.get("RGBD_FUSION_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"


def rendering_unavailable(error: Exception):
    """``unavailable`` for a renderer that could not start (no EGL)."""
    unavailable(f"cannot render here (EGL: apt-get install {EGL_PACKAGES}): {error}")


def generate_or_unavailable(config):
    """Render the synthetic dataset of ``config``; ``rendering_unavailable`` when there is no EGL."""
    from rgbd_fusion_core.synth.generate import generate

    try:
        generate(config, progress=False)
    except RuntimeError as error:
        rendering_unavailable(error)
    return config


def folder_bytes(root) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes (to compare two generated datasets byte for byte)."""
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_tiny_model(folder, seed: int = 0):
    """A model folder with randomly initialised tiny-preset stage1/stage2 weights (output heads perturbed so
    the networks are not identically zero)."""
    from rgbd_fusion_core.config import load_stage_config
    from rgbd_fusion_core.models import build_denoiser
    from rgbd_fusion_core.models.checkpoint import save_stage_model

    torch.manual_seed(seed)
    for stage in (1, 2):
        config = load_stage_config("tiny", stage)
        model = build_denoiser(config.model)
        with torch.no_grad():
            for p in model.head.parameters():
                p.normal_(0, 0.05)
        save_stage_model(folder / f"stage{stage}.safetensors", config, model.state_dict())
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def rendered_dataset(tmp_path_factory):
    """A small dataset rendered by our own generator (6 subjects x 2 views, 64/256 resolutions)."""
    from rgbd_fusion_core.cli.main import main

    out = tmp_path_factory.mktemp("rendered") / "data"
    args = [
        "make-dataset",
        "--out",
        str(out),
        "--subjects",
        "6",
        "--views-per-subject",
        "2",
        "--seed",
        "7",
        "--workers",
        "1",
        "--test-fraction",
        "0.34",
    ]
    assert main(args) == 0
    return out
