"""Where models live: a model folder (``stage1.safetensors`` + ``stage2.safetensors``, optional
``manifest.json`` of sha256 hashes) or the shipped default model inside the package, checked by hash."""

from __future__ import annotations

import json
from pathlib import Path

from rgbd_fusion_core.checkpoint import CheckpointError, sha256_file

DEFAULT_MODEL_DIR = Path(__file__).parent / "weights"
STAGE_FILES = ("stage1.safetensors", "stage2.safetensors")
MANIFEST = "manifest.json"


def verify_manifest(folder: Path) -> None:
    """Raise when a file listed in ``manifest.json`` is missing or its sha256 differs."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for name, expected in manifest["sha256"].items():
        path = folder / name
        if not path.exists():
            raise CheckpointError(f"model file missing: {path}")
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(
                f"model file {path} is corrupt: sha256 {actual[:12]}... does not match the manifest's "
                f"{expected[:12]}... (reinstall the package or re-download the model)"
            )


def resolve_model_dir(model: str | Path | None) -> tuple[Path, Path]:
    """(stage1 path, stage2 path) of a model folder; None means the shipped default (always hash-checked)."""
    folder = DEFAULT_MODEL_DIR if model is None else Path(model)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    paths = tuple(folder / name for name in STAGE_FILES)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise CheckpointError(f"model folder {folder} lacks {missing} (expected {list(STAGE_FILES)})")
    if model is None or (folder / MANIFEST).exists():
        verify_manifest(folder)
    return paths
