"""Mask-first output: a given person mask limits the predicted depth to the mask grown by ``mask_margin_px`` (at the
stage-2 resolution), and nowhere else. Stage 2 is replaced by a constant "person everywhere" prediction, so
whatever depth comes out is exactly what the mask limit let through (tiny model, no rendering, seconds)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from rgbd_fusion_core.geometry.crop import cut, resize_nearest
from rgbd_fusion_core.inference.pipeline import Pipeline
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig

SHAPE = (240, 320)


BASE = PipelineConfig(
    steps1=1, steps2=1, reference_depth="fixed", fixed_distance_m=2.0, person_source="none", edge_step_m=0.0
)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return Pipeline.from_pretrained(tiny_model_dir, backend="torch", device="cpu", config=BASE)


def run(loaded: Pipeline, frame: Frame, **settings):
    """The loaded models with ``settings`` and stage 2 predicting a person at z_ref in every pixel."""
    pipeline = loaded.with_config(dataclasses.replace(BASE, **settings))
    pipeline.stage2_depth = lambda rgb_high, depth_low, noise: torch.full_like(noise, pipeline.space.centre)
    return pipeline(frame)


def frame_with_mask() -> tuple[Frame, np.ndarray]:
    """A grey frame and an irregular person mask (a disc and a bar), not touching the frame's edges."""
    mask = np.zeros(SHAPE, np.uint8)
    cv2.circle(mask, (150, 110), 45, 1, -1)
    mask[140:200, 140:170] = 1
    K = np.array([[300.0, 0, SHAPE[1] / 2], [0, 280.0, SHAPE[0] / 2], [0, 0, 1]])
    rgb = np.full((*SHAPE, 3), 118, np.uint8)
    return Frame(rgb, K, mask=mask.astype(bool)), mask


def mask_in_crop(mask: np.ndarray, box, size: int) -> np.ndarray:
    return resize_nearest(cut(mask, box), size) > 0


@pytest.mark.parametrize("margin", [0, 4, 9])
def test_a_mask_limits_the_depth_to_itself_grown_by_the_margin(loaded, margin):
    frame, mask = frame_with_mask()
    out = run(loaded, frame, mask_margin_px=margin)
    assert out.person_source == "mask" and out.z_ref_source == "fixed"
    size = out.depth.shape[0]
    inside = mask_in_crop(mask, out.crop_box, size)
    predicted = np.isfinite(out.depth)
    assert inside.sum() > 1000 and (~inside).sum() > 1000  # the crop shows both person and background
    # distance (stage-2 pixels) of every crop pixel from the mask
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    assert predicted[inside].all()  # the whole mask has depth
    assert not predicted[distance > margin + 0.5].any()  # nothing beyond the margin
    if margin == 0:
        np.testing.assert_array_equal(predicted, inside)
    else:
        assert predicted[distance <= margin - 0.5].all()  # the margin ring is allowed, all the way round
        assert (predicted & ~inside).sum() > 0
    np.testing.assert_allclose(out.depth[predicted], 2.0, atol=1e-5)
    assert len(out.points) == predicted.sum()


def test_without_a_mask_nothing_is_limited(loaded):
    frame, _ = frame_with_mask()
    out = run(loaded, Frame(frame.rgb, frame.K))
    assert out.person_source == "centre" and np.isfinite(out.depth).all()
