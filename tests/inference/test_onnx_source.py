"""``--onnx DIR`` / the node's ``onnx``: the ONNX-based backends run a given export folder (fp32 or int8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import rgbd_fusion_core  # noqa: E402
from rgbd_fusion_core.cli.main import main  # noqa: E402
from rgbd_fusion_core.inference.pipeline import Pipeline  # noqa: E402
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig  # noqa: E402

PLAIN = PipelineConfig(steps1=1, steps2=1, person_source="none")


def test_a_given_export_folder_is_what_onnx_runtime_runs(tiny_model_dir, tmp_path):
    folder = tmp_path / "export"
    assert main(["export", "--model", str(tiny_model_dir), "--out", str(folder)]) == 0
    pipeline = Pipeline.from_pretrained(tiny_model_dir, backend="onnxruntime", device="cpu", config=PLAIN, onnx=folder)
    assert pipeline.stage1.denoiser.onnx_path.parent == folder and pipeline.stage2.denoiser.onnx_path.parent == folder
    torch_pipeline = Pipeline.from_pretrained(tiny_model_dir, backend="torch", device="cpu", config=PLAIN, onnx=folder)
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])
    a, b = pipeline(Frame(rgb, K)), torch_pipeline(Frame(rgb, K))
    np.testing.assert_allclose(np.nan_to_num(a.depth), np.nan_to_num(b.depth), atol=1e-3)


def test_an_export_of_another_config_is_refused(tiny_model_dir, tmp_path):
    from rgbd_fusion_core.runtime.graph_contract import ExportError

    folder = tmp_path / "shipped_export"
    shipped = Path(rgbd_fusion_core.__file__).parent / "weights"  # the small preset, not the tiny one
    assert main(["export", "--model", str(shipped), "--out", str(folder)]) == 0
    with pytest.raises(ExportError, match="config differs"):
        Pipeline.from_pretrained(tiny_model_dir, backend="onnxruntime", device="cpu", config=PLAIN, onnx=folder)


def test_an_export_of_other_weights_is_refused(tiny_model_dir, tmp_path):
    """Same config, other weights (another seed): running it would silently run another model."""
    from conftest import write_tiny_model

    from rgbd_fusion_core.runtime.graph_contract import ExportError

    other = write_tiny_model(tmp_path / "other", seed=1)
    folder = tmp_path / "export"
    assert main(["export", "--model", str(other), "--out", str(folder)]) == 0
    with pytest.raises(ExportError, match="exported from other weights"):
        Pipeline.from_pretrained(tiny_model_dir, backend="onnxruntime", device="cpu", config=PLAIN, onnx=folder)


def test_int8_names_the_shipped_models_int8_export(tiny_model_dir):
    pipeline = Pipeline.from_pretrained(backend="onnxruntime", device="cpu", config=PLAIN, onnx="int8")
    shipped_int8 = Path(rgbd_fusion_core.__file__).parent / "weights" / "int8"
    assert pipeline.stage1.denoiser.onnx_path.parent == shipped_int8
    assert pipeline.stage2.denoiser.onnx_path.parent == shipped_int8
    rgb = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    result = pipeline(Frame(rgb, np.array([[120.0, 0, 63.5], [0, 120.0, 63.5], [0, 0, 1]])))
    assert result.depth.shape == (256, 256)
    with pytest.raises(ValueError, match="shipped model's int8 export"):
        Pipeline.from_pretrained(tiny_model_dir, backend="onnxruntime", device="cpu", config=PLAIN, onnx="int8")
