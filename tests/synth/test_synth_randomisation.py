"""Randomised renders: every switch changes a sample and is reproducible from the seed; occluders keep depth
person-only; upper-body framing leaves the legs out of the crop."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import folder_bytes, generate_or_unavailable

pytest.importorskip("anny")
pytest.importorskip("warp")
pytest.importorskip("moderngl")

from rgbd_fusion_core.synth.generate import GeneratorConfig, generate  # noqa: E402

ALL_OFF = dict(
    clothing_textures=False,
    multi_lights=False,
    camera_effects=False,
    varied_framing=False,
    occluder_share=0.0,
    background_jitter=False,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 2)
    cv2.imwrite(str(folder / "photo.png"), photo)
    config = GeneratorConfig(
        out=tmp_path_factory.mktemp("rand") / "off",
        subjects=1,
        views_per_subject=2,
        seed=3,
        test_fraction=0.0,
        pose_batch=2,
        resolution=64,
        reject_intersections=False,
        background_dir=folder,
        photo_share=1.0,
        **ALL_OFF,
    )
    return generate_or_unavailable(config)


def _render(config, name, **changes):
    changed = replace(config, out=config.out.parent / name, **changes)
    generate(changed, progress=False)
    return changed


@pytest.mark.parametrize(
    "changes",
    [
        {"clothing_textures": True},
        {"multi_lights": True},
        {"camera_effects": True},
        {"varied_framing": True},
        {"occluder_share": 1.0},
        {"background_jitter": True},
    ],
    ids=lambda c: next(iter(c)),
)
def test_each_switch_changes_the_sample_and_is_reproducible(base, changes):
    name = next(iter(changes))
    on = _render(base, name, **changes)
    files_off, files_on = folder_bytes(base.out), folder_bytes(on.out)
    rgb = [k for k in files_on if k.endswith(".png") and "rgb" in k]
    assert rgb and any(files_on[k] != files_off[k] for k in rgb), f"{name} changed no RGB image"
    again = _render(base, name + "_again", **changes)
    assert folder_bytes(again.out) == files_on
    meta = (on.out / "meta").glob("*.json")
    assert all(f'"{name}": {str(changes[name]).lower()}' in m.read_text() for m in meta)


def _depth(config, sample="s0000_v00"):
    path = config.out / str(config.resolution) / "depth" / f"{sample}.png"
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int64)


def test_depth_stays_person_only_under_occluders(base):
    on = _render(base, "occluded", occluder_share=1.0, clothing_textures=True)
    off = _render(base, "unoccluded", clothing_textures=True)
    occluded_somewhere = 0
    for sample in ("s0000_v00", "s0000_v01"):
        with_occluder, without = _depth(on, sample), _depth(off, sample)
        kept = with_occluder > 0
        assert np.array_equal(with_occluder[kept], without[kept])  # no occluder depth anywhere
        occluded_somewhere += int(((without > 0) & ~kept).sum())
        meta = (on.out / "meta" / f"{sample}.json").read_text()
        assert '"occluder"' in meta
    assert occluded_somewhere > 0


def test_upper_body_framing_leaves_the_legs_out():
    from rgbd_fusion_core.synth.body import BodyModel
    from rgbd_fusion_core.synth.scene import frame_camera, sample_framing, sample_view

    body = BodyModel()
    _, phenotype = body.sample_shape(0)
    vertices = body.posed_vertices(phenotype, np.zeros((1, len(body._joint_bones))))[0]
    feet = body._regions == "shoes"
    shins = body._leg_t > 0.6
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        view = sample_framing(rng, sample_view(rng))
        if view.framing != "upper_body":
            continue
        R, t = frame_camera(vertices, view, 256, anchor=body.framing_anchor(view.framing))
        camera = vertices @ R.T + t
        K = view.intrinsics(256)
        v = K[1, 1] * camera[:, 1] / camera[:, 2] + K[1, 2]
        u = K[0, 0] * camera[:, 0] / camera[:, 2] + K[0, 2]
        legs = feet | shins
        inside = (u[legs] >= 0) & (u[legs] < 256) & (v[legs] >= 0) & (v[legs] < 256)
        assert not inside.any(), f"seed {seed}: {inside.sum()} leg vertices in the crop"
        head = body._regions == "head"
        assert ((v[head] >= 0) & (v[head] < 256)).mean() > 0.9
        checked += 1
    assert checked >= 5


def test_an_occluder_hiding_the_whole_person_is_dropped(base, monkeypatch):
    """A view whose occluder would leave (nearly) nothing of the person is rendered without it and says so."""
    import json

    from rgbd_fusion_core.synth import scene

    def wall(rng, camera_vertices, K, size):  # a wall between camera and person covering the whole view
        near = float(camera_vertices[:, 2].min()) * 0.5
        corners = np.array([[-50, -50, near], [50, -50, near], [50, 50, near], [-50, 50, near]], np.float64)
        vertices = np.concatenate([corners, corners + [0, 0, 0.01]])
        faces = np.array([[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6]])
        return vertices, faces, {"kind": "wall"}

    monkeypatch.setattr(scene, "sample_occluder", wall)
    config = _render(base, "walled", occluder_share=1.0)
    metas = sorted((config.out / "meta").glob("*.json"))
    assert len(metas) == 2
    for meta_file in metas:
        info = json.loads(meta_file.read_text())["info"]
        assert info["occluder"] == {"kind": "wall", "dropped": "hid the person"}
    for depth_file in sorted((config.out / "64" / "depth").glob("*.png")):
        assert (cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED) > 0).any()
