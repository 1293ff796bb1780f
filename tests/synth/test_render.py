"""The EGL renderer against closed-form depth: a sphere and a tilted plane at known poses, plus shading and
pixel-convention checks. Errors are printed (pytest -s) as max / mean millimetres."""

import numpy as np
import pytest
from conftest import rendering_unavailable

from rgbd_fusion_core.geometry.camera import intrinsics, scale_intrinsics

pytest.importorskip("moderngl")
trimesh = pytest.importorskip("trimesh")

from rgbd_fusion_core.synth.render import Lighting, MeshRenderer  # noqa: E402


@pytest.fixture(scope="module")
def renderer():
    try:
        return MeshRenderer()
    except RuntimeError as error:
        rendering_unavailable(error)


def _rays(K, width, height):
    """Per-pixel ray directions (H, W, 3) with z = 1 through pixel centres."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)


def _sphere_depth(K, size, centre, radius):
    """Closed-form z of the near intersection of each pixel ray with a sphere (0 = miss), and the discriminant."""
    rays = _rays(K, size, size)
    a = (rays**2).sum(-1)
    b = -2 * rays @ centre
    c = centre @ centre - radius**2
    disc = b * b - 4 * a * c
    z = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0.0)
    return z, disc


def test_sphere_depth_matches_closed_form(renderer):
    centre, radius = np.array([0.12, -0.08, 2.3]), 0.45
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    K = intrinsics(290.0, 290.0, 131.2, 124.9)
    view = renderer.render(sphere.vertices + centre, sphere.faces, [(K, 256, 256)])[0]
    truth, disc = _sphere_depth(K, 256, centre, radius)
    interior = (disc > 0.1 * disc.max()) & view.mask  # away from the silhouette
    error_mm = np.abs(view.depth_m - truth)[interior] * 1000
    print(f"sphere depth error: max {error_mm.max():.4f} mm, mean {error_mm.mean():.4f} mm over {interior.sum()} px")
    assert interior.sum() > 8000
    assert error_mm.max() < 1.0 and error_mm.mean() < 0.1
    iou = (view.mask & (truth > 0)).sum() / (view.mask | (truth > 0)).sum()
    assert iou > 0.99
    assert np.array_equal(view.mask, view.depth_m > 0)
    assert (view.rgb[~view.mask] == 0).all()


def test_tilted_plane_depth_is_exact(renderer):
    """A square tilted 35 degrees about x and 20 about y, 1.7 m away: z = (n . p0) / (n . ray)."""
    tilt_x, tilt_y = np.radians(35), np.radians(20)
    Rx = np.array([[1, 0, 0], [0, np.cos(tilt_x), -np.sin(tilt_x)], [0, np.sin(tilt_x), np.cos(tilt_x)]])
    Ry = np.array([[np.cos(tilt_y), 0, np.sin(tilt_y)], [0, 1, 0], [-np.sin(tilt_y), 0, np.cos(tilt_y)]])
    R = Ry @ Rx
    p0 = np.array([0.05, 0.02, 1.7])
    corners = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]) * 0.4 @ R.T + p0
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    K = intrinsics(250.0, 260.0, 127.5, 127.5)
    view = renderer.render(corners, faces, [(K, 256, 256)])[0]
    normal = R[:, 2]
    truth = (normal @ p0) / (_rays(K, 256, 256) @ normal)
    error_mm = np.abs(view.depth_m - truth)[view.mask] * 1000
    print(f"plane depth error: max {error_mm.max():.5f} mm, mean {error_mm.mean():.5f} mm over {view.mask.sum()} px")
    assert view.mask.sum() > 10000
    assert error_mm.max() < 0.05


def test_fronto_parallel_square_lands_where_K_says(renderer):
    """Pixel-centre convention: a square centred on the 3D point that projects to (u, v) has its mask centroid
    there, at both resolutions (the 64 view renders with K scaled about the pixel edges)."""
    K = intrinsics(300.0, 300.0, 120.3, 135.6)
    centre = np.array([0.2, -0.15, 2.0])
    u = K[0, 0] * centre[0] / centre[2] + K[0, 2]
    v = K[1, 1] * centre[1] / centre[2] + K[1, 2]
    square = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]) * 0.2 + centre
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    K64 = scale_intrinsics(K, 256, 64)
    high, low = renderer.render(square, faces, [(K, 256, 256), (K64, 64, 64)])
    for view, k in ((high, K), (low, K64)):
        rows, cols = np.nonzero(view.mask)
        expected_u = k[0, 0] * centre[0] / centre[2] + k[0, 2]
        expected_v = k[1, 1] * centre[1] / centre[2] + k[1, 2]
        assert abs(cols.mean() - expected_u) < 0.5 and abs(rows.mean() - expected_v) < 0.5
    assert abs(np.nonzero(high.mask)[1].mean() - u) < 0.5 and abs(np.nonzero(high.mask)[0].mean() - v) < 0.5


def test_lambertian_shading(renderer):
    """A plane facing the camera, lit head-on then at 60 degrees: albedo * (ambient + intensity * cos)."""
    square = np.array([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    albedo = np.tile([0.8, 0.5, 0.2], (4, 1))
    K = intrinsics(100.0, 100.0, 31.5, 31.5)
    for angle in (0.0, 60.0):
        light = Lighting((np.sin(np.radians(angle)), 0.0, -np.cos(np.radians(angle))), intensity=0.6, ambient=0.3)
        view = renderer.render(square, faces, [(K, 64, 64)], albedo=albedo, lighting=light)[0]
        expected = np.array([0.8, 0.5, 0.2]) * (0.3 + 0.6 * np.cos(np.radians(angle)))
        np.testing.assert_allclose(view.rgb[32, 32], expected, atol=1e-5)
