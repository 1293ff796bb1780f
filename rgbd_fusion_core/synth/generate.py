"""Render a synthetic RGB-D dataset of people: orchestration, worker processes, resume and determinism.

Work is split into units of consecutive subjects. Every random choice comes from a seed sequence keyed by
(seed, stream, subject, view), so the same seed gives byte-identical files whatever the worker count or the
order of completion. Each sample's files are written atomically, its ``meta/<id>.json`` last; a rerun skips
units whose samples are all complete and re-renders the others whole (a unit is a fixed group of subjects, so
its pose batches, and so its results, are the same). ``dataset.json`` is assembled from the meta files at the
end, also atomically.
"""

from __future__ import annotations

import colorsys
import json
import multiprocessing
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from rgbd_fusion_core.data.format import DatasetIndex, SampleEntry, sample_relpaths, split_subjects, write_index
from rgbd_fusion_core.geometry.camera import scale_intrinsics
from rgbd_fusion_core.io.atomic import write_bytes_atomic
from rgbd_fusion_core.io.imageio import write_depth_mm, write_mask, write_rgb

GENERATOR_VERSION = 4
LOW_RES_FACTOR = 4
STREAM_SHAPE, STREAM_LOOK, STREAM_POSE, STREAM_SCENE = range(4)
STREAM_CLOTHING, STREAM_LIGHTS, STREAM_FRAMING, STREAM_OCCLUDER, STREAM_CAMERA = range(4, 9)


MIN_VISIBLE_SHARE = 0.02  # a view whose occluder leaves less of the person visible is rendered without it


@dataclass(frozen=True)
class GeneratorConfig:
    """What ``make-dataset`` renders; ``workers`` changes only the speed, never the files."""

    out: Path
    subjects: int
    views_per_subject: int
    seed: int = 0
    workers: int = 1
    resolution: int = 256
    test_fraction: float = 0.1
    backgrounds: str = "mixed"
    background_dir: Path | None = None
    age_range: str = "adult"
    reject_intersections: bool = True
    # randomisations of what real camera frames vary (each from its own per-sample random stream, recorded in meta)
    clothing_textures: bool = True  # patterned garments, sleeve/trouser lengths, skin tone and hair
    multi_lights: bool = True  # 2-3 coloured lights, tinted ambient, specular
    camera_effects: bool = True  # exposure, white balance, blur, gamma, sensor noise, JPEG (RGB only)
    varied_framing: bool = True  # full / upper body / head and shoulders / cut by the crop edge
    occluder_share: float = 0.25  # share of samples with an object in front of the person (0 = off)
    photo_share: float = 0.6  # with --backgrounds mixed and a background folder: share of photo backgrounds
    background_jitter: bool = True  # multi-scale crops, flips and colour jitter of background photos
    max_pose_attempts: int = 16
    pose_batch: int = 16  # about this many views are posed in one anny call (one work unit)

    @property
    def resolutions(self) -> tuple[int, int]:
        return (self.resolution, self.resolution // LOW_RES_FACTOR)

    def recorded_args(self) -> dict:
        """The arguments that determine the output (``out`` and ``workers`` do not)."""
        args = asdict(self)
        for key in ("out", "workers"):
            args.pop(key)
        args["background_dir"] = str(self.background_dir) if self.background_dir else None
        return args


def validate_config(config: GeneratorConfig) -> None:
    """Raise ``ValueError``/``FileNotFoundError`` with a clear message for bad settings."""
    from rgbd_fusion_core.synth.backgrounds import KINDS, list_background_images
    from rgbd_fusion_core.synth.body import AGE_RANGES_YEARS

    if config.subjects < 1:
        raise ValueError(f"--subjects must be at least 1, got {config.subjects}")
    if config.views_per_subject < 1:
        raise ValueError(f"--views-per-subject must be at least 1, got {config.views_per_subject}")
    if config.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {config.workers}")
    if config.resolution < 64 or config.resolution % LOW_RES_FACTOR:
        raise ValueError(
            f"--resolution must be a multiple of {LOW_RES_FACTOR} and at least 64, got {config.resolution}"
        )
    if not 0.0 <= config.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {config.test_fraction}")
    if config.backgrounds not in KINDS:
        raise ValueError(f"--backgrounds must be one of {KINDS}, got {config.backgrounds!r}")
    if config.age_range not in AGE_RANGES_YEARS:
        raise ValueError(f"--age-range must be one of {sorted(AGE_RANGES_YEARS)}, got {config.age_range!r}")
    if not 0.0 <= config.occluder_share <= 1.0:
        raise ValueError(f"--occluder-share must be in [0, 1], got {config.occluder_share}")
    if not 0.0 <= config.photo_share <= 1.0:
        raise ValueError(f"--photo-share must be in [0, 1], got {config.photo_share}")
    if config.max_pose_attempts < 1 or config.pose_batch < 1:
        raise ValueError(f"max pose attempts and pose batch must be at least 1, got {config}")
    if config.background_dir is not None:
        list_background_images(config.background_dir)
    _check_writable(Path(config.out))


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path exists and is not a folder: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"output folder is not writable: {out}: {error.strerror or error}") from error


def sample_id(config: GeneratorConfig, subject: int, view: int) -> tuple[str, str]:
    """(sample id, subject id), e.g. ("s0003_v02", "s0003"); zero-padded to the largest index."""
    subject_id = f"s{subject:0{max(4, len(str(config.subjects - 1)))}d}"
    return f"{subject_id}_v{view:0{max(2, len(str(config.views_per_subject - 1)))}d}", subject_id


def _rng(config: GeneratorConfig, stream: int, subject: int, view: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(stream, subject, view)))


def _sample_files(config: GeneratorConfig, sample: str) -> list[Path]:
    files = [config.out / rel for r in config.resolutions for rel in sample_relpaths(r, sample).values()]
    return files + [_meta_path(config, sample)]


def _meta_path(config: GeneratorConfig, sample: str) -> Path:
    return config.out / "meta" / f"{sample}.json"


def unit_subjects(config: GeneratorConfig, unit: int) -> list[int]:
    """Subjects of work unit ``unit``: consecutive groups of about ``pose_batch`` views (fixed by the config alone,
    so pose batches and therefore results do not depend on the worker count or on resuming)."""
    per_unit = max(1, config.pose_batch // config.views_per_subject)
    return list(range(unit * per_unit, min((unit + 1) * per_unit, config.subjects)))


def unit_count(config: GeneratorConfig) -> int:
    return -(-config.subjects // len(unit_subjects(config, 0)))


def sample_fingerprint(config: GeneratorConfig) -> dict:
    """The settings that determine a sample's files (``subjects`` and ``test_fraction`` do not, so a set can be
    extended with more subjects or re-split); stored in each meta file and checked on resume."""
    args = config.recorded_args()
    for key in ("subjects", "test_fraction"):
        args.pop(key)
    return {"version": GENERATOR_VERSION, **args}


def unit_complete(config: GeneratorConfig, unit: int) -> bool:
    """Whether every file of the unit exists; errors if they were made with other settings."""
    complete = all(
        path.is_file()
        for subject in unit_subjects(config, unit)
        for view in range(config.views_per_subject)
        for path in _sample_files(config, sample_id(config, subject, view)[0])
    )
    if complete:
        meta_path = _meta_path(config, sample_id(config, unit_subjects(config, unit)[0], 0)[0])
        found = json.loads(meta_path.read_text()).get("generator")
        expected = sample_fingerprint(config)
        if found != expected:
            changed = sorted(k for k in expected if (found or {}).get(k) != expected[k])
            raise ValueError(
                f"{config.out} already holds samples made with other settings ({', '.join(changed)} differ, "
                f"see {meta_path}); rerun with the same settings to resume, or use a new --out"
            )
    return complete


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
        rngs = [_rng(config, STREAM_POSE, subject, view) for subject, view in items]
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
        from rgbd_fusion_core.synth.backgrounds import sample_background
        from rgbd_fusion_core.synth.camera_effects import apply_camera_effects
        from rgbd_fusion_core.synth.render import OCCLUDER_FLAG, Pattern, vertex_normals
        from rgbd_fusion_core.synth.scene import (
            frame_camera,
            sample_framing,
            sample_lighting,
            sample_occluder,
            sample_view,
        )

        config = self.config
        subjects = unit_subjects(config, unit)
        shapes, looks = {}, {}
        for subject in subjects:
            seed_state = np.random.SeedSequence(config.seed, spawn_key=(STREAM_SHAPE, subject, 0)).generate_state(1)
            shapes[subject] = self.body.sample_shape(int(seed_state[0]))
            if config.clothing_textures:
                looks[subject] = self.body.sample_clothing(_rng(config, STREAM_CLOTHING, subject))
            else:
                looks[subject] = self.body.sample_look(_rng(config, STREAM_LOOK, subject))
        items = [(subject, view) for subject in subjects for view in range(config.views_per_subject)]
        vertices, pose_stats = self._sample_poses(items, {s: shape[1] for s, shape in shapes.items()})
        high, low = config.resolutions
        for item, (subject, view) in enumerate(items):
            age, phenotype = shapes[subject]
            look = looks[subject]
            sample, subject_id = sample_id(config, subject, view)
            rng = _rng(config, STREAM_SCENE, subject, view)
            setup = sample_view(rng)
            extra_info = {}
            if config.multi_lights:
                setup = replace(setup, lighting=sample_lighting(_rng(config, STREAM_LIGHTS, subject, view)))
                extra_info["lights"] = len(setup.lighting.lights())
            if config.varied_framing:
                setup = sample_framing(_rng(config, STREAM_FRAMING, subject, view), setup)
                extra_info["framing"] = setup.framing
            R, t = frame_camera(vertices[item], setup, high, anchor=self.body.framing_anchor(setup.framing))
            K = {high: setup.intrinsics(high)}
            K[low] = scale_intrinsics(K[high], high, low)
            camera_vertices = vertices[item] @ R.T + t
            faces = self.body.faces
            normals = vertex_normals(camera_vertices, faces)
            texcoords = self.body.texcoords
            albedo = look.albedo
            material = look.material if look.material is not None else np.zeros(len(albedo), np.float32)
            patterns = list(look.patterns) or [Pattern()] * 4
            patterns = (patterns + [Pattern()] * 4)[:4]
            person_only = (camera_vertices, faces, normals, texcoords, albedo, material)
            occluder_rng = _rng(config, STREAM_OCCLUDER, subject, view)
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
                faces = np.concatenate([faces, occ_faces + len(camera_vertices)])
                normals = np.concatenate([normals, vertex_normals(occ_vertices, occ_faces)])
                texcoords = np.concatenate([texcoords, occ_vertices])
                albedo = np.concatenate([albedo, np.broadcast_to(colour, occ_vertices.shape)])
                material = np.concatenate([material, np.full(len(occ_vertices), 4 + OCCLUDER_FLAG, np.float32)])
                camera_vertices = np.concatenate([camera_vertices, occ_vertices])
                extra_info["occluder"] = occ_info
            views = [(K[high], high, high), (K[low], low, low)]
            scene = dict(lighting=setup.lighting, patterns=patterns)
            rendered = self.renderer.render(
                camera_vertices,
                faces,
                views,
                albedo=albedo,
                normals=normals,
                texcoords=texcoords,
                material=material,
                **scene,
            )
            if "occluder" in extra_info and rendered[0].mask.mean() < MIN_VISIBLE_SHARE:
                # the occluder hides (nearly) all of the person: this view is rendered without it
                person_vertices, person_faces, person_normals, person_texcoords, person_albedo, person_material = (
                    person_only
                )
                rendered = self.renderer.render(
                    person_vertices,
                    person_faces,
                    views,
                    albedo=person_albedo,
                    normals=person_normals,
                    texcoords=person_texcoords,
                    material=person_material,
                    **scene,
                )
                extra_info["occluder"] = {**extra_info["occluder"], "dropped": "hid the person"}
            background_kind, background = sample_background(
                rng,
                config.backgrounds,
                high,
                self.background_images,
                photo_share=config.photo_share,
                jitter=config.background_jitter,
            )
            backgrounds = {high: background, low: _area_resize(background, low)}
            composites = {}
            for resolution, view_image in zip((high, low), rendered):
                coverage = view_image.coverage[:, :, None]
                composites[resolution] = np.where(coverage, view_image.rgb, backgrounds[resolution])
            if config.camera_effects:
                # the camera sees the high-resolution frame; the low-resolution RGB is its area downscale
                rgb_high, extra_info["camera"] = apply_camera_effects(
                    composites[high], _rng(config, STREAM_CAMERA, subject, view)
                )
                images = {high: rgb_high, low: _area_resize(rgb_high, low)}
            else:
                images = {r: np.clip(c * 255.0 + 0.5, 0, 255).astype(np.uint8) for r, c in composites.items()}
            files = {}
            for resolution, view_image in zip((high, low), rendered):
                rel = sample_relpaths(resolution, sample)
                write_rgb(config.out / rel["rgb"], images[resolution])
                write_depth_mm(config.out / rel["depth"], view_image.depth_m)
                write_mask(config.out / rel["mask"], view_image.mask)
                files[resolution] = rel
            meta = {
                **SampleEntry(sample, subject_id, files, K).to_json(),
                "generator": sample_fingerprint(config),
                "info": {
                    **pose_stats[item],
                    "age_years": round(age, 2),
                    "phenotype": {k: round(float(v[0]), 4) for k, v in phenotype.items()},
                    "look": look.description,
                    "yaw_deg": round(setup.yaw_deg, 2),
                    "pitch_deg": round(setup.pitch_deg, 2),
                    "fov_deg": round(setup.fov_deg, 2),
                    "fill": round(setup.fill, 4),
                    "camera_distance_m": round(float(np.linalg.norm(R.T @ -t - vertices[item].mean(0))), 4),
                    "background": background_kind,
                    **extra_info,
                },
            }
            write_bytes_atomic(_meta_path(config, sample), (json.dumps(meta, indent=1) + "\n").encode())
        return len(items)


def _area_resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


_process_renderer: UnitRenderer | None = None


def _renderer_for(config: GeneratorConfig) -> UnitRenderer:
    """This process's UnitRenderer, rebuilt only when settings that affect the models change."""
    global _process_renderer
    if _process_renderer is None or (
        (_process_renderer.config.age_range, _process_renderer.config.background_dir)
        != (config.age_range, config.background_dir)
    ):
        _process_renderer = UnitRenderer(config)
    _process_renderer.config = config
    return _process_renderer


def _worker_init(config: GeneratorConfig) -> None:
    torch.set_num_threads(1)
    _renderer_for(config)


def _worker_render(args: tuple[GeneratorConfig, int]) -> int:
    config, unit = args
    return _renderer_for(config).render_unit(unit)


def assemble_index(config: GeneratorConfig) -> DatasetIndex:
    """Build the dataset index from the per-sample meta files (all must exist)."""
    samples, attempts, intersecting = [], [], 0
    for subject in range(config.subjects):
        for view in range(config.views_per_subject):
            meta = json.loads(_meta_path(config, sample_id(config, subject, view)[0]).read_text())
            samples.append(
                SampleEntry(
                    meta["id"],
                    meta["subject"],
                    {int(r): kinds for r, kinds in meta["files"].items()},
                    {int(r): np.asarray(k) for r, k in meta["K"].items()},
                )
            )
            attempts.append(meta["info"]["pose_attempts"])
            intersecting += meta["info"]["intersecting"]
    subjects = sorted({s.subject for s in samples})
    generator = {
        "name": "rgbd_fusion_core.synth",
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "args": config.recorded_args(),
        "pose_attempts_mean": round(float(np.mean(attempts)), 4),
        "rejection_rate": round(1.0 - len(attempts) / float(np.sum(attempts)), 4),
        "samples_left_intersecting": int(intersecting),
    }
    return DatasetIndex(
        root=config.out,
        depth_unit="mm",
        resolutions=config.resolutions,
        splits=split_subjects(subjects, config.test_fraction, config.seed),
        samples=samples,
        generator=generator,
    )


def generate(config: GeneratorConfig, progress: bool = True) -> DatasetIndex:
    """Render (or finish rendering) the dataset described by ``config`` and write its ``dataset.json``."""
    from tqdm import tqdm

    background_dir = Path(config.background_dir) if config.background_dir else None
    config = GeneratorConfig(**{**asdict(config), "out": Path(config.out), "background_dir": background_dir})
    validate_config(config)
    todo = [u for u in range(unit_count(config)) if not unit_complete(config, u)]
    total = config.subjects * config.views_per_subject
    done = total - sum(len(unit_subjects(config, u)) for u in todo) * config.views_per_subject
    with tqdm(total=total, initial=done, unit="sample", disable=not progress, smoothing=0.1) as bar:
        if config.workers == 1 or len(todo) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # same arithmetic as in a worker process
            try:
                renderer = _renderer_for(config)
                for unit in todo:
                    bar.update(renderer.render_unit(unit))
            finally:
                torch.set_num_threads(threads)
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(config.workers, len(todo)), initializer=_worker_init, initargs=(config,)) as pool:
                for count in pool.imap_unordered(_worker_render, [(config, u) for u in todo]):
                    bar.update(count)
    index = assemble_index(config)
    write_index(index)
    return index
