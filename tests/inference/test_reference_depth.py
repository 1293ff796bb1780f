"""The height prior with a camera whose fx != fy: a height in pixels scales with fy, never fx."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rgbd_fusion_core.inference.pipeline import Pipeline, largest_region_height
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig

FX, FY = 300.0, 450.0  # deliberately different: a height divided by the wrong focal length is off by 1.5x
PERSON_HEIGHT_M = 1.7


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    config = PipelineConfig(steps1=1, steps2=1, seed=3, reference_depth="height_prior", person_height_m=PERSON_HEIGHT_M)
    return Pipeline.from_pretrained(tiny_model_dir, device="cpu", config=config)


def test_height_prior_uses_fy_of_the_crop(pipeline, monkeypatch):
    """Stage 2 answers a flat person (network depth 0.2 wherever the mask allows): z_ref = fy_crop * H / h_px."""

    def flat_person(rgb_high, depth_low, noise):
        return torch.full_like(noise, 0.2)

    monkeypatch.setattr(pipeline, "stage2_depth", flat_person)
    rgb = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    mask = np.zeros((240, 320), bool)
    mask[30:210, 130:190] = True  # taller than wide: the crop's height in pixels is the mask's
    K = np.array([[FX, 0, 159.5], [0, FY, 119.5], [0, 0, 1]])
    result = pipeline(Frame(rgb, K, mask=mask))
    assert result.z_ref_source == "height_prior"
    size = result.depth.shape[0]
    scale = size / result.crop_box[2]
    np.testing.assert_allclose([result.K_crop[0, 0], result.K_crop[1, 1]], [FX * scale, FY * scale], rtol=1e-9)
    height_px = largest_region_height(np.isfinite(result.depth))
    assert height_px > size // 2
    assert result.z_ref == pytest.approx(result.K_crop[1, 1] * PERSON_HEIGHT_M / height_px, rel=1e-6)
    assert result.z_ref != pytest.approx(result.K_crop[0, 0] * PERSON_HEIGHT_M / height_px, rel=0.1)
    # the points lie near that distance (0.2 is close to the depth window's centre)
    assert np.nanmedian(result.points[:, 2]) == pytest.approx(result.z_ref, rel=0.05)
