"""Pinhole helpers: crop/resize folded into K, back-projection of a rendered depth, look-at."""

import cv2
import numpy as np
import pytest
from conftest import rendering_unavailable

from rgbd_fusion_core.geometry.camera import (
    backproject,
    crop_intrinsics,
    intrinsics,
    look_at,
    project,
    scale_intrinsics,
)


def test_crop_intrinsics_projects_points_to_the_cropped_pixels():
    rng = np.random.default_rng(1)
    K = intrinsics(520.0, 515.0, 318.2, 241.7)
    points = np.column_stack([rng.uniform(-0.5, 0.5, (50, 2)), rng.uniform(1.0, 4.0, 50)])
    x0, y0, size, out_size = 150.0, 90.0, 300.0, 64
    K_crop = crop_intrinsics(K, x0, y0, size, out_size)
    full = project(points, K)
    expected = (full - [x0, y0] + 0.5) * (out_size / size) - 0.5
    np.testing.assert_allclose(project(points, K_crop), expected, atol=1e-9)


def test_crop_intrinsics_matches_opencv_area_resize():
    """A 4x4 bright block at pixels 100..103 (centre 101.5) cropped at 64 and halved lands at 18..19 (18.5)."""
    image = np.zeros((256, 256), np.float32)
    image[100:104, 100:104] = 1.0
    crop = cv2.resize(image[64:192, 64:192], (64, 64), interpolation=cv2.INTER_AREA)
    rows, cols = np.nonzero(crop > 0.99)
    K = crop_intrinsics(intrinsics(1.0, 1.0, 101.5, 101.5), 64, 64, 128, 64)
    assert cols.mean() == pytest.approx(K[0, 2]) and rows.mean() == pytest.approx(K[1, 2])


def test_scale_intrinsics_keeps_the_image_centre():
    K64 = scale_intrinsics(intrinsics(400.0, 400.0, 127.5, 127.5), 256, 64)
    np.testing.assert_allclose(K64, intrinsics(100.0, 100.0, 31.5, 31.5))


def test_look_at_centres_the_target_with_world_up_pointing_up_in_the_image():
    R, t = look_at(eye=[0.0, -3.0, 1.0], target=[0.0, 0.0, 1.0])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.allclose(R @ [0, 0, 1.0] + t, [0, 0, 3.0])
    above = R @ [0, 0, 1.5] + t
    assert above[1] < 0  # optical y points down, so "up" is negative y


def test_backprojected_rendered_depth_reprojects_to_the_same_pixels():
    pytest.importorskip("moderngl")
    from rgbd_fusion_core.synth.render import MeshRenderer

    trimesh = pytest.importorskip("trimesh")
    try:
        renderer = MeshRenderer()
    except RuntimeError as error:
        rendering_unavailable(error)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    K = intrinsics(210.0, 205.0, 70.3, 60.8)
    view = renderer.render(sphere.vertices + [0.05, -0.1, 2.0], sphere.faces, [(K, 144, 128)])[0]
    points, pixels = backproject(view.depth_m, K)
    assert len(points) == view.mask.sum() > 1000
    np.testing.assert_allclose(project(points, K), pixels[:, ::-1], atol=1e-3)
    np.testing.assert_allclose(points[:, 2], view.depth_m[pixels[:, 0], pixels[:, 1]])
    # the points lie on the sphere (up to the facets of the mesh)
    radius = np.linalg.norm(points - [0.05, -0.1, 2.0], axis=1)
    assert np.abs(radius - 0.4).max() < 0.004
