"""Rendering the samples of one work unit: bodies posed (self-intersections resampled), camera, lights, the person
and an occluder, background and camera effects, and the sample's files (meta file last).
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import replace

import numpy as np
import torch

from rgbd_fusion_core.data.format import SampleEntry, sample_relpaths
from rgbd_fusion_core.geometry.camera import scale_intrinsics
from rgbd_fusion_core.io.atomic import write_bytes_atomic
from rgbd_fusion_core.io.imageio import write_depth_mm, write_mask, write_rgb
from rgbd_fusion_core.synth.dataset_plan import (
    STREAM_CAMERA,
    STREAM_CLOTHING,
    STREAM_FRAMING,
    STREAM_LIGHTS,
    STREAM_LOOK,
    STREAM_OCCLUDER,
    STREAM_POSE,
    STREAM_SCENE,
    STREAM_SHAPE,
    GeneratorConfig,
    meta_path,
    sample_fingerprint,
    sample_id,
    stream_rng,
    unit_subjects,
)

MIN_VISIBLE_SHARE = 0.02  # a view whose occluder leaves less of the person visible is rendered without it


class UnitRenderer:
    """Per-process state (anny model, EGL renderer, background list) that renders work units of subjects."""

    def __init__(self, config: GeneratorConfig):
        from rgbd_fusion_core.synth.backgrounds import list_background_images
        from rgbd_fusion_core.synth.body import BodyModel
        from rgbd_fusion_core.synth.render import MeshRenderer

        self.config = config
        self.body = BodyModel(config.age_range)
        self.renderer = MeshRenderer()
        self.background_images = list_background_images(config.background_dir) if config.background_dir else None

    def _sample_poses(self, items: list[tuple[int, int]], phenotypes: dict) -> tuple[np.ndarray, list[dict]]:
        """Posed vertices (len(items), V, 3) and pose statistics for (subject, view) items, with self-intersecting
        poses resampled.

        Round r poses (as one batch) every item still without an accepted pose, each from its own random stream; an
        item still intersecting after ``max_pose_attempts`` keeps its attempt with the fewest colliding triangles
        (flagged in its meta). ``phenotypes[subject]`` is a dict of (1,) tensors.
        """
        config = self.config
        rngs = [stream_rng(config, STREAM_POSE, subject, view) for subject, view in items]
        accepted = [None] * len(items)
        stats = [{"pose_attempts": 0, "intersecting": False} for _ in items]
        best = [(np.inf, None)] * len(items)
        pending = list(range(len(items)))
        for _ in range(config.max_pose_attempts):
            if not pending:
                break
            angles = np.stack([self.body.sample_pose_angles(rngs[i]) for i in pending])
            batch = {key: torch.cat([phenotypes[items[i][0]][key] for i in pending]) for key in phenotypes[items[0][0]]}
            still_pending = []
            for i, mesh in zip(pending, self.body.posed_vertices(batch, angles)):
                stats[i]["pose_attempts"] += 1
                colliding = self.body.colliding_triangles(mesh) if config.reject_intersections else 0
                if colliding == 0:
                    accepted[i] = mesh
                    continue
                if colliding < best[i][0]:
                    best[i] = (colliding, mesh)
                still_pending.append(i)
            pending = still_pending
        for i in pending:
            accepted[i] = best[i][1]
            stats[i]["intersecting"] = True
        return np.stack(accepted), stats

    def render_unit(self, unit: int) -> int:
        """Render and write every view of the subjects of one work unit; returns the number of samples written."""
        config = self.config
        subjects = unit_subjects(config, unit)
        shapes, looks = {}, {}
        for subject in subjects:
            seed_state = np.random.SeedSequence(config.seed, spawn_key=(STREAM_SHAPE, subject, 0)).generate_state(1)
            shapes[subject] = self.body.sample_shape(int(seed_state[0]))
            if config.clothing_textures:
                looks[subject] = self.body.sample_clothing(stream_rng(config, STREAM_CLOTHING, subject))
            else:
                looks[subject] = self.body.sample_look(stream_rng(config, STREAM_LOOK, subject))
        items = [(subject, view) for subject in subjects for view in range(config.views_per_subject)]
        vertices, pose_stats = self._sample_poses(items, {s: shape[1] for s, shape in shapes.items()})
        for item, (subject, view) in enumerate(items):
            self._render_view(subject, view, vertices[item], shapes[subject], looks[subject], pose_stats[item])
        return len(items)

    def _render_view(self, subject: int, view: int, vertices: np.ndarray, shape, look, pose_stats: dict) -> None:
        """One sample: camera and lights, the person (and an occluder), background and camera effects, files."""
        from rgbd_fusion_core.synth.scene import frame_camera, sample_framing, sample_lighting, sample_view

        config = self.config
        high, low = config.resolutions
        rng = stream_rng(config, STREAM_SCENE, subject, view)
        setup = sample_view(rng)
        extra_info = {}
        if config.multi_lights:
            setup = replace(setup, lighting=sample_lighting(stream_rng(config, STREAM_LIGHTS, subject, view)))
            extra_info["lights"] = len(setup.lighting.lights())
        if config.varied_framing:
            setup = sample_framing(stream_rng(config, STREAM_FRAMING, subject, view), setup)
            extra_info["framing"] = setup.framing
        R, t = frame_camera(vertices, setup, high, anchor=self.body.framing_anchor(setup.framing))
        K = {high: setup.intrinsics(high)}
        K[low] = scale_intrinsics(K[high], high, low)
        rendered = self._render_person(vertices @ R.T + t, look, setup.lighting, K, subject, view, extra_info)
        images, background_kind = self._camera_images(rng, rendered, subject, view, extra_info)
        age, phenotype = shape
        info = {
            **pose_stats,
            "age_years": round(age, 2),
            "phenotype": {k: round(float(v[0]), 4) for k, v in phenotype.items()},
            "look": look.description,
            "yaw_deg": round(setup.yaw_deg, 2),
            "pitch_deg": round(setup.pitch_deg, 2),
            "fov_deg": round(setup.fov_deg, 2),
            "fill": round(setup.fill, 4),
            "camera_distance_m": round(float(np.linalg.norm(R.T @ -t - vertices.mean(0))), 4),
            "background": background_kind,
            **extra_info,
        }
        self._write_sample(subject, view, rendered, images, K, info)

    def _render_person(self, camera_vertices, look, lighting, K: dict, subject: int, view: int, extra_info: dict):
        """The person (camera coordinates, (V, 3) metres) rendered at both resolutions, with an occluder in front
        for a share of the views (one that hides the person is dropped); notes it in ``extra_info``."""
        from rgbd_fusion_core.synth.render import OCCLUDER_FLAG, Pattern, vertex_normals
        from rgbd_fusion_core.synth.scene import sample_occluder

        config = self.config
        high, low = config.resolutions
        faces = self.body.faces
        normals = vertex_normals(camera_vertices, faces)
        texcoords = self.body.texcoords
        albedo = look.albedo
        material = look.material if look.material is not None else np.zeros(len(albedo), np.float32)
        patterns = list(look.patterns) or [Pattern()] * 4
        patterns = (patterns + [Pattern()] * 4)[:4]
        person_only = dict(albedo=albedo, normals=normals, texcoords=texcoords, material=material)
        views = [(K[high], high, high), (K[low], low, low)]
        occluder_rng = stream_rng(config, STREAM_OCCLUDER, subject, view)
        if config.occluder_share > 0 and occluder_rng.uniform() < config.occluder_share:
            occ_vertices, occ_faces, occ_info = sample_occluder(occluder_rng, camera_vertices, K[high], high)
            colour = np.array(colorsys.hsv_to_rgb(*occluder_rng.uniform([0, 0, 0.1], [1, 0.6, 0.9])))
            patterns.append(
                Pattern(
                    ("plain", "stripes", "noise")[int(occluder_rng.integers(3))],
                    tuple((colour * occluder_rng.uniform(0.5, 0.9)).tolist()),
                    float(occluder_rng.uniform(5, 40)),
                    float(occluder_rng.uniform(0, np.pi)),
                    float(occluder_rng.uniform(0.0, 0.3)),
                )
            )
            rendered = self.renderer.render(
                np.concatenate([camera_vertices, occ_vertices]),
                np.concatenate([faces, occ_faces + len(camera_vertices)]),
                views,
                albedo=np.concatenate([albedo, np.broadcast_to(colour, occ_vertices.shape)]),
                normals=np.concatenate([normals, vertex_normals(occ_vertices, occ_faces)]),
                texcoords=np.concatenate([texcoords, occ_vertices]),
                material=np.concatenate([material, np.full(len(occ_vertices), 4 + OCCLUDER_FLAG, np.float32)]),
                lighting=lighting,
                patterns=patterns,
            )
            extra_info["occluder"] = occ_info
            if rendered[0].mask.mean() >= MIN_VISIBLE_SHARE:
                return rendered
            extra_info["occluder"] = {**occ_info, "dropped": "hid the person"}
        return self.renderer.render(camera_vertices, faces, views, lighting=lighting, patterns=patterns, **person_only)

    def _camera_images(self, rng, rendered, subject: int, view: int, extra_info: dict) -> tuple[dict, str]:
        """({resolution: (H, W, 3) uint8 RGB}, background kind): the renders over a background, then (when on) the
        camera's effects on the high-resolution frame, whose area downscale is the low-resolution RGB."""
        from rgbd_fusion_core.synth.backgrounds import sample_background
        from rgbd_fusion_core.synth.camera_effects import apply_camera_effects

        config = self.config
        high, low = config.resolutions
        background_kind, background = sample_background(
            rng,
            config.backgrounds,
            high,
            self.background_images,
            photo_share=config.photo_share,
            jitter=config.background_jitter,
        )
        backgrounds = {high: background, low: area_resize(background, low)}
        composites = {}
        for resolution, view_image in zip((high, low), rendered):
            coverage = view_image.coverage[:, :, None]
            composites[resolution] = np.where(coverage, view_image.rgb, backgrounds[resolution])
        if not config.camera_effects:
            images = {r: np.clip(c * 255.0 + 0.5, 0, 255).astype(np.uint8) for r, c in composites.items()}
            return images, background_kind
        rgb_high, extra_info["camera"] = apply_camera_effects(
            composites[high], stream_rng(config, STREAM_CAMERA, subject, view)
        )
        return {high: rgb_high, low: area_resize(rgb_high, low)}, background_kind

    def _write_sample(self, subject: int, view: int, rendered, images: dict, K: dict, info: dict) -> None:
        """The sample's RGB, depth and mask files at both resolutions, then its meta file (last: it marks the
        sample complete)."""
        config = self.config
        sample, subject_id = sample_id(config, subject, view)
        files = {}
        for resolution, view_image in zip(config.resolutions, rendered):
            rel = sample_relpaths(resolution, sample)
            write_rgb(config.out / rel["rgb"], images[resolution])
            write_depth_mm(config.out / rel["depth"], view_image.depth_m)
            write_mask(config.out / rel["mask"], view_image.mask)
            files[resolution] = rel
        meta = {
            **SampleEntry(sample, subject_id, files, K).to_json(),
            "generator": sample_fingerprint(config),
            "info": info,
        }
        write_bytes_atomic(meta_path(config, sample), (json.dumps(meta, indent=1) + "\n").encode())


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
