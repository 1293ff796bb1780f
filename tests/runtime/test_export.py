"""ONNX export of the real (tiny-preset) denoisers, parity with torch in real ONNX Runtime, the export folder
format, and the ONNX Runtime backend behind the same denoiser call as torch."""

import json
import os

import numpy as np
import onnx
import pytest
import torch

from rgbd_fusion_core.cli.main import main
from rgbd_fusion_core.config import SamplerConfig, load_stage_config
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.diffusion.samplers import make_sampler, sample
from rgbd_fusion_core.export.onnx_export import PARITY_TOLERANCE, example_inputs
from rgbd_fusion_core.inference.backends import make_backend
from rgbd_fusion_core.io.hashing import sha256_file
from rgbd_fusion_core.models import build_denoiser
from rgbd_fusion_core.models.checkpoint import load_stage_model, save_stage_model
from rgbd_fusion_core.runtime.graph_contract import METADATA, ExportError, load_exported_stage
from rgbd_fusion_core.runtime.onnxruntime_backend import OnnxRuntimeDenoiser, parse_device, physical_core_count


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny-preset model folder whose every weight is random, so time embedding, attention and output head all
    shape the prediction (freshly initialised blocks and heads are zero and would hide export mistakes)."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    for stage in (1, 2):
        config = load_stage_config("tiny", stage)
        model = build_denoiser(config.model)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0, 0.1)
        save_stage_model(folder / f"stage{stage}.safetensors", config, model.state_dict())
    return folder


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    assert main(["export", "--model", str(model_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def stage_models(model_dir):
    return {stage: load_stage_model(model_dir / f"stage{stage}.safetensors") for stage in (1, 2)}


def test_export_folder_metadata_describes_each_graph(export_dir, stage_models):
    metadata = json.loads((export_dir / METADATA).read_text())
    assert metadata["opset"] == 17
    assert sorted(metadata["stages"]) == ["stage1", "stage2"]
    for stage, (config, _) in stage_models.items():
        entry = metadata["stages"][f"stage{stage}"]
        onnx_path = export_dir / entry["onnx"]
        assert entry["sha256"] == sha256_file(onnx_path)
        assert entry["parity_max_abs_error"] <= PARITY_TOLERANCE
        size, model = config.resolution, config.model
        assert entry["inputs"] == {
            "x_t": ["batch", model.in_channels, size, size],
            "t": ["batch"],
            "cond": ["batch", model.cond_channels, size, size],
        }
        graph = onnx.load(onnx_path).graph
        shapes = {
            value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in [*graph.input, *graph.output]
        }
        assert shapes == {**entry["inputs"], **entry["outputs"]}
        assert entry["outputs"]["prediction"] == ["batch", model.out_channels, size, size]
        assert load_exported_stage(export_dir, stage).config == config


@pytest.mark.parametrize("stage", [1, 2])
def test_onnxruntime_matches_torch_for_batch_1_and_3(export_dir, stage_models, stage):
    config, module = stage_models[stage]
    denoiser = make_backend("onnxruntime", config, module, "cpu", source=export_dir, threads=1)
    for batch in (1, 3):
        x_t, t, cond = example_inputs(config, batch, seed=100 + batch)
        with torch.no_grad():
            expected = module(x_t, t, cond)
        prediction = denoiser(x_t, t, cond)
        assert prediction.shape == expected.shape and prediction.dtype == torch.float32
        assert float((prediction - expected).abs().max()) <= 1e-4
        # the timestep is a live input of the graph, not a constant folded in at export time
        reversed_t = config.diffusion.timesteps - 1 - t
        with torch.no_grad():
            expected_moved = module(x_t, reversed_t, cond)
        moved = denoiser(x_t, reversed_t, cond)
        assert float((moved - expected_moved).abs().max()) <= 1e-4
        assert float((moved - prediction).abs().max()) > 1e-3


def test_backends_share_one_call_contract(export_dir, stage_models):
    """Both backends accept any float dtype / memory layout and return float32 on their device, equal values."""
    config, module = stage_models[2]
    backends = [
        make_backend("torch", config, module, "cpu"),
        make_backend("onnxruntime", config, module, "cpu", source=export_dir, threads=1),
    ]
    x_t, t, cond = example_inputs(config, 2, seed=7)
    cond_odd_layout = cond.double().permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    outputs = [backend(x_t.double(), t.long(), cond_odd_layout) for backend in backends]
    for backend, output in zip(backends, outputs):
        assert output.device == backend.device and output.dtype == torch.float32
    assert float((outputs[0] - outputs[1]).abs().max()) <= 1e-4


def test_sampling_loop_gives_the_same_depth_on_both_backends(export_dir, stage_models):
    config, module = stage_models[1]
    diffusion = GaussianDiffusion(config.diffusion)
    _, _, cond = example_inputs(config, 2, seed=3)
    noise = torch.randn(2, 1, config.resolution, config.resolution, generator=torch.Generator().manual_seed(3))
    results = []
    for backend in ("torch", "onnxruntime"):
        denoiser = make_backend(backend, config, module, "cpu", source=export_dir)
        sampler = make_sampler(SamplerConfig(name="dpmpp2m", steps=3), diffusion)
        results.append(sample(denoiser, sampler, cond, tuple(noise.shape), noise=noise.clone()))
    assert float((results[0] - results[1]).abs().max()) <= 1e-3


def test_module_is_exported_once_into_the_cache(stage_models, tmp_path, monkeypatch):
    monkeypatch.setenv("RGBD_FUSION_CACHE", str(tmp_path))
    config, module = stage_models[1]
    first = make_backend("onnxruntime", config, module, "cpu", threads=1)
    stamp = first.onnx_path.stat().st_mtime_ns
    second = make_backend("onnxruntime", config, module, "cpu", threads=1)
    assert second.onnx_path == first.onnx_path and second.onnx_path.stat().st_mtime_ns == stamp
    assert first.onnx_path.is_relative_to(tmp_path)
    changed = build_denoiser(config.model)
    changed.load_state_dict(module.state_dict())
    with torch.no_grad():
        changed.encoder.conv_in.bias.add_(0.5)
    assert make_backend("onnxruntime", config, changed, "cpu", threads=1).onnx_path != first.onnx_path


def test_corrupt_or_missing_exports_fail_clearly(export_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in export_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    onnx_path = copy / "stage1.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="corrupt or modified"):
        load_exported_stage(copy, 1)
    with pytest.raises(ExportError, match="not an export folder"):
        load_exported_stage(tmp_path, 1)
    (copy / "stage2.onnx").unlink()
    with pytest.raises(ExportError, match="missing"):
        load_exported_stage(copy, 2)


def test_export_cli_rejects_bad_arguments(model_dir, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["export", "--out", out]) == 1
    assert "nothing to export" in capsys.readouterr().err
    assert main(["export", "--model", str(model_dir), "--stage1", str(model_dir), "--out", out]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["export", "--stage1", str(model_dir / "stage2.safetensors"), "--out", out]) == 1
    assert "expected stage 1" in capsys.readouterr().err


def test_export_cli_one_stage_at_a_time(model_dir, tmp_path):
    out = tmp_path / "stages"
    assert main(["export", "--stage2", str(model_dir / "stage2.safetensors"), "--out", str(out)]) == 0
    assert sorted(json.loads((out / METADATA).read_text())["stages"]) == ["stage2"]
    with pytest.raises(ExportError, match="has no stage 1"):
        load_exported_stage(out, 1)
    assert main(["export", "--stage1", str(model_dir / "stage1.safetensors"), "--out", str(out)]) == 0
    assert sorted(json.loads((out / METADATA).read_text())["stages"]) == ["stage1", "stage2"]
    assert load_exported_stage(out, 2).config.stage == 2


def test_onnxruntime_devices_and_providers(export_dir):
    import onnxruntime as ort

    assert parse_device("cpu") == ("cpu", 0)
    assert parse_device(torch.device("cuda", 1)) == ("cuda", 1)
    assert parse_device("tensorrt:2") == ("tensorrt", 2)
    with pytest.raises(ValueError, match="expected 'cpu'"):
        parse_device("gpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="no CUDAExecutionProvider"):
            OnnxRuntimeDenoiser(export_dir / "stage1.onnx", device="cuda")
    assert 1 <= physical_core_count() <= len(os.sched_getaffinity(0))


def test_onnx_graph_is_checked_before_use(tmp_path):
    """An ONNX file that is not a stage denoiser is refused with the file named."""
    node = onnx.helper.make_node("Identity", ["image"], ["out"])
    graph = onnx.helper.make_graph(
        [node],
        "not_a_denoiser",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    with pytest.raises(RuntimeError, match="other.onnx"):
        OnnxRuntimeDenoiser(path)


def test_pipeline_on_onnxruntime_matches_torch(model_dir, tmp_path, monkeypatch):
    """The whole Pipeline (both stages, seeded) gives the same metric depth on the ONNX Runtime backend."""
    from rgbd_fusion_core.inference.pipeline import Pipeline
    from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig

    monkeypatch.setenv("RGBD_FUSION_CACHE", str(tmp_path))
    config = PipelineConfig(steps1=2, steps2=2, seed=5)
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    depths = []
    for backend in ("torch", "onnxruntime"):
        pipeline = Pipeline.from_pretrained(model_dir, backend=backend, device="cpu", config=config)
        depths.append(pipeline(Frame(rgb, K)).depth)
    assert np.array_equal(np.isnan(depths[0]), np.isnan(depths[1]))
    assert np.nanmax(np.abs(depths[0] - depths[1]), initial=0.0) < 1e-3
