"""Where models live: a model folder (``stage1.safetensors`` + ``stage2.safetensors``, optional
``manifest.json`` of sha256 hashes) or the shipped default model inside the package, checked by hash."""

from __future__ import annotations

import json
from pathlib import Path

from rgbd_fusion_core.io.atomic import write_bytes_atomic, write_text_atomic
from rgbd_fusion_core.io.hashing import sha256_file
from rgbd_fusion_core.models.checkpoint import CheckpointError, load_stage_model, stage_model_path

DEFAULT_MODEL_DIR = Path(__file__).parents[1] / "weights"
STAGE_FILES = ("stage1.safetensors", "stage2.safetensors")
MANIFEST = "manifest.json"
SHIPPED_INT8 = "int8"  # the ``onnx`` name of the shipped model's int8 export (DEFAULT_MODEL_DIR / "int8")


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


def resolve_onnx_dir(onnx: str | Path | None, model: str | Path | None) -> str | Path | None:
    """The export folder an ``onnx`` setting names: ``"int8"`` = the shipped model's int8 export (only with the
    shipped model), anything else as given."""
    if str(onnx) != SHIPPED_INT8:
        return onnx
    if model is not None:
        raise ValueError(
            f"onnx '{SHIPPED_INT8}' is the shipped model's int8 export; for the model {model} run "
            "`rgbd-fusion quantize --model ...` and pass its output folder"
        )
    return DEFAULT_MODEL_DIR / SHIPPED_INT8


def write_model_folder(stage1: str | Path, stage2: str | Path, out: str | Path) -> dict:
    """Copy two stage models (files or run folders) into a model folder with a sha256 manifest; checks that
    each loads as its stage and that the two share one depth space."""
    out = Path(out)
    configs = []
    hashes = {}
    for stage, source, name in zip((1, 2), (stage1, stage2), STAGE_FILES):
        path = stage_model_path(source)
        configs.append(load_stage_model(path, expected_stage=stage)[0])
        write_bytes_atomic(out / name, path.read_bytes())
        hashes[name] = sha256_file(out / name)
    if configs[0].depth_space != configs[1].depth_space:
        raise CheckpointError("stage 1 and stage 2 use different depth spaces; they cannot form one model")
    manifest = {"sha256": hashes, "sources": {"stage1": str(stage1), "stage2": str(stage2)}}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest
