"""What a synthetic dataset is, before any rendering: its settings (``GeneratorConfig``), sample ids, work units of
subjects, the per-(seed, stream, subject, view) random streams that make every sample reproducible, and the
fingerprint that a resumed run must match.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rgbd_fusion_core.data.format import sample_relpaths

GENERATOR_VERSION = 4
LOW_RES_FACTOR = 4
STREAM_SHAPE, STREAM_LOOK, STREAM_POSE, STREAM_SCENE = range(4)
STREAM_CLOTHING, STREAM_LIGHTS, STREAM_FRAMING, STREAM_OCCLUDER, STREAM_CAMERA = range(4, 9)


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
    check_writable(Path(config.out))


def check_writable(out: Path) -> None:
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


def stream_rng(config: GeneratorConfig, stream: int, subject: int, view: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(stream, subject, view)))


def sample_files(config: GeneratorConfig, sample: str) -> list[Path]:
    files = [config.out / rel for r in config.resolutions for rel in sample_relpaths(r, sample).values()]
    return files + [meta_path(config, sample)]


def meta_path(config: GeneratorConfig, sample: str) -> Path:
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
        for path in sample_files(config, sample_id(config, subject, view)[0])
    )
    if complete:
        first = meta_path(config, sample_id(config, unit_subjects(config, unit)[0], 0)[0])
        found = json.loads(first.read_text()).get("generator")
        expected = sample_fingerprint(config)
        if found != expected:
            changed = sorted(k for k in expected if (found or {}).get(k) != expected[k])
            raise ValueError(
                f"{config.out} already holds samples made with other settings ({', '.join(changed)} differ, "
                f"see {first}); rerun with the same settings to resume, or use a new --out"
            )
    return complete
