"""The on-disk dataset format: a folder of PNGs (or float depth) plus one index file, ``dataset.json``.

Layout written by ``rgbd-fusion make-dataset`` (any layout works as long as the index points at the files)::

    DIR/dataset.json
    DIR/256/rgb/s0003_v02.png      8-bit RGB
    DIR/256/depth/s0003_v02.png    16-bit z-depth in millimetres, 0 = no depth
    DIR/256/mask/s0003_v02.png     8-bit, 0 = background, 255 = person (optional)
    DIR/64/...                     the same at 64 x 64 (optional: the loader can derive it from 256)

``dataset.json``::

    {"format": "rgbd-fusion-dataset", "version": 2,
     "depth_unit": "mm",                  # "mm": uint16 PNG millimetres; "m": float .npy/.exr metres
     "resolutions": [256, 64],
     "splits": {"train": ["s0000", ...], "test": ["s0007", ...]},       # by subject, never by frame
     "samples": [{"id": "s0003_v02", "subject": "s0003",
                  "files": {"256": {"rgb": "256/rgb/s0003_v02.png", "depth": "...", "mask": "..."}, "64": {...}},
                  "K": {"256": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "64": [[...]]},
                  "person": {"finder": "mediapipe-0.10.21", "found": true,          # version 2, optional
                             "mask": "256/finder_mask/s0003_v02.png",
                             "keypoints_2d": [[x, y, visibility], ...],            # 33, pixels of the 256 image
                             "keypoints_3d": [[x, y, z], ...]}}],                  # 33, metres, hip-centred
     "generator": {...}}                  # optional: how the set was made

Version 2 adds the optional per-sample ``person``: what the person finder (not the ground truth) saw in the
256 RGB, written by ``rgbd-fusion annotate``; ``"found": false`` with no other keys when it saw nobody. Version 1
files (no ``person``) still load.

Intrinsics are pinhole, pixel centres at integer coordinates (see ``geometry/camera.py``), depth is z along
the optical axis. Reading validates the structure and that every listed file exists; pixel checks happen when a
sample is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rgbd_fusion_core.io.atomic import write_bytes_atomic

FORMAT_NAME = "rgbd-fusion-dataset"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
INDEX_NAME = "dataset.json"
DEPTH_UNITS = ("mm", "m")
REQUIRED_KINDS = ("rgb", "depth")
OPTIONAL_KINDS = ("mask",)


@dataclass(frozen=True)
class SampleEntry:
    """One sample: ``files[res][kind]`` relative paths (kind in rgb, depth, mask) and ``K[res]`` (3, 3) float64."""

    id: str
    subject: str
    files: dict[int, dict[str, str]]
    K: dict[int, np.ndarray]
    person: dict | None = None  # the finder's annotation (format version 2), None = not annotated

    def to_json(self) -> dict:
        out = {
            "id": self.id,
            "subject": self.subject,
            "files": {str(r): dict(kinds) for r, kinds in self.files.items()},
            "K": {str(r): np.asarray(k, dtype=float).tolist() for r, k in self.K.items()},
        }
        if self.person is not None:
            out["person"] = self.person
        return out


@dataclass(frozen=True)
class DatasetIndex:
    """The parsed ``dataset.json`` of the folder ``root``."""

    root: Path
    depth_unit: str
    resolutions: tuple[int, ...]
    splits: dict[str, list[str]]
    samples: list[SampleEntry]
    generator: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "depth_unit": self.depth_unit,
            "resolutions": list(self.resolutions),
            "splits": {name: list(subjects) for name, subjects in self.splits.items()},
            "samples": [s.to_json() for s in self.samples],
            "generator": self.generator,
        }

    def split_samples(self, split: str) -> list[SampleEntry]:
        """Samples of ``split`` ("all" = every sample), in index order; errors on an unknown or empty split."""
        if split == "all":
            chosen = list(self.samples)
        else:
            if split not in self.splits:
                raise ValueError(f"unknown split {split!r} in {self.root / INDEX_NAME}; it has {sorted(self.splits)}")
            subjects = set(self.splits[split])
            chosen = [s for s in self.samples if s.subject in subjects]
        if not chosen:
            raise ValueError(f"split {split!r} of {self.root / INDEX_NAME} has no samples")
        return chosen


def sample_relpaths(resolution: int, sample_id: str) -> dict[str, str]:
    """The standard relative file paths of one sample at one resolution."""
    return {kind: f"{resolution}/{kind}/{sample_id}.png" for kind in ("rgb", "depth", "mask")}


def split_subjects(subjects: list[str], test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Subject-disjoint train/test split: round(fraction * N) test subjects (at least 1 when the fraction is > 0 and
    N >= 2), chosen by a permutation seeded from ``seed``; both lists sorted."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    subjects = sorted(subjects)
    n_test = int(round(test_fraction * len(subjects)))
    if test_fraction > 0 and len(subjects) >= 2:
        n_test = min(max(n_test, 1), len(subjects) - 1)
    order = np.random.default_rng([seed, 0x5917]).permutation(len(subjects))
    test = {subjects[i] for i in order[:n_test]}
    return {"train": [s for s in subjects if s not in test], "test": [s for s in subjects if s in test]}


def write_index(index: DatasetIndex) -> Path:
    """Write ``root/dataset.json`` atomically; returns its path."""
    path = index.root / INDEX_NAME
    write_bytes_atomic(path, (json.dumps(index.to_json(), indent=1) + "\n").encode())
    return path


def _fail(path: Path, message: str):
    raise ValueError(f"{path}: {message}")


def _parse_K(path: Path, sample_id: str, resolution: int, value) -> np.ndarray:
    K = np.asarray(value, dtype=np.float64) if value is not None else None
    if K is None or K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        _fail(path, f"sample {sample_id}: intrinsics K[{resolution}] missing or not a valid 3x3 pinhole matrix")
    return K


def read_index(root, check_files: bool = True) -> DatasetIndex:
    """Parse and validate ``root/dataset.json``; with ``check_files`` every listed file must exist."""
    root = Path(root)
    path = root / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"dataset index not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        _fail(path, f'not a dataset index (expected "format": "{FORMAT_NAME}")')
    if data.get("version") not in READABLE_VERSIONS:
        _fail(path, f"unsupported version {data.get('version')!r} (this reader knows {READABLE_VERSIONS})")
    depth_unit = data.get("depth_unit", "mm")
    if depth_unit not in DEPTH_UNITS:
        _fail(path, f"depth_unit must be one of {DEPTH_UNITS}, got {depth_unit!r}")
    resolutions = data.get("resolutions")
    if not resolutions or not all(isinstance(r, int) and r > 0 for r in resolutions):
        _fail(path, f"resolutions must be a non-empty list of positive integers, got {resolutions!r}")
    splits = data.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        _fail(path, 'splits must map split names to lists of subject ids, e.g. {"train": [...], "test": [...]}')
    split_of = {}
    for name, subjects in splits.items():
        for subject in subjects:
            if subject in split_of:
                _fail(path, f"subject {subject} is in both split {split_of[subject]!r} and {name!r}")
            split_of[subject] = name
    samples = []
    seen = set()
    for raw in data.get("samples") or []:
        sample_id, subject = raw.get("id"), raw.get("subject")
        if not sample_id or not subject:
            _fail(path, f"every sample needs an id and a subject, got {raw!r:.200}")
        if sample_id in seen:
            _fail(path, f"duplicate sample id {sample_id}")
        seen.add(sample_id)
        files, intrinsics = {}, {}
        for resolution in resolutions:
            kinds = (raw.get("files") or {}).get(str(resolution))
            if not isinstance(kinds, dict) or any(k not in kinds for k in REQUIRED_KINDS):
                _fail(path, f"sample {sample_id}: files[{resolution}] must name at least {REQUIRED_KINDS}")
            unknown = set(kinds) - set(REQUIRED_KINDS + OPTIONAL_KINDS)
            if unknown:
                _fail(path, f"sample {sample_id}: unknown file kinds {sorted(unknown)}")
            if check_files:
                for kind, rel in kinds.items():
                    if not (root / rel).is_file():
                        raise FileNotFoundError(f"{path}: sample {sample_id}: {kind} file missing: {root / rel}")
            files[resolution] = dict(kinds)
            intrinsics[resolution] = _parse_K(path, sample_id, resolution, (raw.get("K") or {}).get(str(resolution)))
        person = _parse_person(path, root, sample_id, raw.get("person"), check_files)
        samples.append(SampleEntry(sample_id, subject, files, intrinsics, person))
    if not samples:
        _fail(path, "lists no samples")
    return DatasetIndex(root, depth_unit, tuple(resolutions), splits, samples, data.get("generator") or {})


def _parse_person(path: Path, root: Path, sample_id: str, person, check_files: bool) -> dict | None:
    """Validate a sample's finder annotation: found flag, mask file, (33, 3) keypoint lists."""
    if person is None:
        return None
    if not isinstance(person, dict) or not isinstance(person.get("found"), bool):
        _fail(path, f'sample {sample_id}: person must be a mapping with a boolean "found"')
    if not person["found"]:
        return person
    for key in ("keypoints_2d", "keypoints_3d"):
        values = np.asarray(person.get(key), dtype=np.float64)
        if values.shape != (33, 3) or not np.isfinite(values).all():
            _fail(path, f"sample {sample_id}: person.{key} must be 33 finite [x, y, z/visibility] triples")
    mask = person.get("mask")
    if not isinstance(mask, str):
        _fail(path, f"sample {sample_id}: person.mask must name the finder's mask file")
    if check_files and not (root / mask).is_file():
        raise FileNotFoundError(f"{path}: sample {sample_id}: person mask file missing: {root / mask}")
    return person
