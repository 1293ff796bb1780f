"""Shared fixtures: tiny untrained models (seconds to build) for plumbing tests."""

import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def write_tiny_model(folder, seed: int = 0):
    """A model folder with randomly initialised tiny-preset stage1/stage2 weights (output heads perturbed so
    the networks are not identically zero)."""
    from rgbd_fusion_core.checkpoint import save_stage_model
    from rgbd_fusion_core.config import load_stage_config
    from rgbd_fusion_core.models import build_denoiser

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
