"""The inference Pipeline: geometry, reference depth, determinism, sensor-depth mode and input errors."""

import numpy as np
import pytest
import torch

from rgbd_fusion_core.evaluation.metrics import chamfer_distance_mm
from rgbd_fusion_core.geometry.camera import backproject, crop_intrinsics, project
from rgbd_fusion_core.geometry.crop import cut, mask_box, resize_nearest
from rgbd_fusion_core.inference.pipeline import Pipeline
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig
from rgbd_fusion_core.inference.targets import Target

K = np.array([[400.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])


# Plumbing on untrained weights and synthetic frames without people: the centred crop (person_source "none").
PLAIN = PipelineConfig(steps1=2, steps2=2, person_source="none")


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    return Pipeline.from_pretrained(tiny_model_dir, device="cpu", config=PLAIN)


def test_crop_intrinsics_project_points_onto_the_crop(pipeline):
    """A 3D point projects through (K, full image) and (K_crop, crop) onto the same scene content."""
    rgb = np.zeros((480, 640, 3), np.uint8)
    point = np.array([[0.3, -0.2, 2.5]])
    u, v = project(point, K)[0]
    rgb[int(round(v)) - 3 : int(round(v)) + 4, int(round(u)) - 3 : int(round(u)) + 4] = 255
    mask = np.zeros((480, 640), bool)
    mask[100:330, 250:460] = True
    result = pipeline(Frame(rgb, K, mask=mask))
    u_c, v_c = project(point, result.K_crop)[0]
    bright = result.rgb_crop[..., 0] > 60
    rows, cols = np.nonzero(bright)
    weights = result.rgb_crop[rows, cols, 0].astype(float)
    assert abs(np.average(cols, weights=weights) - u_c) < 0.6
    assert abs(np.average(rows, weights=weights) - v_c) < 0.6


def test_crop_back_projection_matches_the_full_frame_cloud(rendered_dataset):
    """A rendered person pasted into a bigger frame, cut and resized by the pipeline's crop and K_crop, gives the
    same point cloud as the rendered depth back-projected with its own K: every crop point projects (through the
    full frame's K) onto the full-frame pixel whose depth it carries, and the two clouds coincide."""
    from rgbd_fusion_core.data.format import read_index
    from rgbd_fusion_core.io.imageio import read_depth_m

    index = read_index(rendered_dataset)
    sample = index.samples[0]
    depth = read_depth_m(rendered_dataset / sample.files[256]["depth"])
    K256 = np.asarray(sample.K[256])
    # paste into a 480x640 frame at (x=200, y=120): K shifts by the offset
    full = np.zeros((480, 640), np.float32)
    full[120:376, 200:456] = depth
    K_full = K256.copy()
    K_full[0, 2] += 200
    K_full[1, 2] += 120
    truth_points, _ = backproject(depth, K256)
    box = mask_box(full > 0, margin=0.1)
    crop_depth = resize_nearest(cut(full, box), 256)
    K_crop = crop_intrinsics(K_full, box[0], box[1], box[2], 256)
    points, _ = backproject(crop_depth, K_crop)
    u, v = np.round(project(points.astype(np.float64), K_full)).astype(int).T
    on_surface = np.abs(full[v, u] - points[:, 2]) < 1e-3
    assert on_surface.mean() > 0.98, on_surface.mean()
    # the clouds sample one surface at different pixel pitches (~4-8 mm here): Chamfer within about a pixel
    assert chamfer_distance_mm(torch.from_numpy(points), torch.from_numpy(truth_points)) < 10.0


def test_reference_depth_strategies(pipeline):
    rgb = np.full((240, 320, 3), 90, np.uint8)
    K_small = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    mask = np.zeros((240, 320), bool)
    mask[40:200, 120:200] = True
    sensor = np.where(mask, 2.2, 5.0).astype(np.float32)
    assert pipeline(Frame(rgb, K_small, mask=mask, sensor_depth=sensor)).z_ref == pytest.approx(2.2)
    sensor_mm = np.where(mask, 1800, 0).astype(np.uint16)
    r = pipeline(Frame(rgb, K_small, mask=mask, sensor_depth=sensor_mm))
    assert r.z_ref == pytest.approx(1.8) and r.z_ref_source == "sensor" and r.nfe == 2
    fixed = pipeline.with_config(
        PipelineConfig(steps1=2, steps2=2, person_source="none", reference_depth="fixed", fixed_distance_m=3.3)
    )
    assert fixed(Frame(rgb, K_small)).z_ref == pytest.approx(3.3)
    # height prior: a person 128 rows tall in the 256 crop, fy_crop = 512 -> z = 512 * 1.7 / 128
    net = np.full((256, 256), -1.0)
    net[64:192, 100:150] = 0.2
    net[2, 5] = net[250, 200] = 0.5  # stray specks do not stretch the person
    K_crop = np.array([[512.0, 0, 127.5], [0, 512.0, 127.5], [0, 0, 1]])
    z, source = pipeline._reference_depth(net, K_crop, Target(), K_small)
    assert source == "height_prior" and z == pytest.approx(512 * 1.7 / 128)


def test_seeded_pipeline_is_deterministic_and_batch_independent(pipeline):
    rng = np.random.default_rng(1)
    a = (rng.random((200, 300, 3)) * 255).astype(np.uint8)
    b = (rng.random((200, 300, 3)) * 255).astype(np.uint8)
    Kb = np.array([[250.0, 0, 150], [0, 250.0, 100], [0, 0, 1]])
    first = pipeline([Frame(a, Kb), Frame(b, Kb)])
    again = pipeline([Frame(a, Kb)])[0]
    np.testing.assert_allclose(np.nan_to_num(first[0].depth), np.nan_to_num(again.depth), atol=1e-4)
    other_seed = pipeline.with_config(PipelineConfig(steps1=2, steps2=2, person_source="none", seed=5))(Frame(a, Kb))
    assert not np.allclose(np.nan_to_num(other_seed.depth), np.nan_to_num(again.depth))


def test_outputs_shapes_and_full_frame(pipeline):
    rgb = np.full((300, 400, 3), 128, np.uint8)
    cfg = PipelineConfig(steps1=2, steps2=2, person_source="none", full_frame=True, uncertainty_samples=2)
    r = pipeline.with_config(cfg)(Frame(rgb, np.array([[300.0, 0, 200], [0, 300.0, 150], [0, 0, 1]])))
    assert r.depth.shape == (256, 256) and r.depth.dtype == np.float32
    assert r.depth_low_res.shape == (64, 64) and r.depth_full.shape == (300, 400)
    assert r.uncertainty.shape == (256, 256)
    assert r.points.shape == (int(np.isfinite(r.depth).sum()), 3) and r.colors.dtype == np.uint8
    assert r.nfe == 2 + 2 * 2


K100 = np.array([[100.0, 0, 49.5], [0, 100.0, 49.5], [0, 0, 1]])  # intrinsics that fit the 100x100 images


@pytest.mark.parametrize(
    "frame, message",
    [
        (lambda: Frame(np.zeros((100, 100), np.uint8), K100), "shape \\(H, W, 3\\)"),
        (lambda: Frame(np.zeros((100, 100, 4), np.uint8), K100), "RGBA"),
        (lambda: Frame(np.zeros((100, 100, 3), np.float32), K), "uint8"),
        (lambda: Frame(np.zeros((100, 100, 3), np.uint8), np.zeros((3, 3))), "focal lengths must be positive"),
        (lambda: Frame(np.zeros((100, 100, 3), np.uint8), K), "cx=319.5 px lies far outside the 100x100 image"),
        (lambda: Frame(np.zeros((100, 100, 3), np.uint8), K100, mask=np.zeros((100, 100), bool)), "mask is empty"),
        (lambda: Frame(np.zeros((100, 100, 3), np.uint8), K100, mask=np.ones((50, 100), bool)), "mask shape"),
        (
            lambda: Frame(np.zeros((100, 100, 3), np.uint8), K100, sensor_depth=np.full((100, 100), np.nan, "f4")),
            "no valid pixels",
        ),
        (
            lambda: Frame(np.zeros((100, 100, 3), np.uint8), K100, sensor_depth=np.zeros((100, 100), np.uint16)),
            "no valid pixels",
        ),
        (
            lambda: Frame(np.zeros((100, 100, 3), np.uint8), K100, sensor_depth=np.ones((90, 100), np.float32)),
            "sensor depth shape",
        ),
    ],
)
def test_bad_input_gives_a_clear_error(pipeline, frame, message):
    with pytest.raises(ValueError, match=message):
        pipeline(frame())


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="reference_depth"):
        PipelineConfig(reference_depth="lidar")
    with pytest.raises(ValueError, match="uncertainty_samples"):
        PipelineConfig(uncertainty_samples=1)
