"""Native TensorRT engines built from the same ONNX that ONNX Runtime verifies. The GPU tests skip here (no
NVIDIA GPU); the engine-cache rules and the clear errors are checked everywhere."""

import json

import pytest
import torch

from rgbd_fusion_core.cli.main import main
from rgbd_fusion_core.config import load_stage_config
from rgbd_fusion_core.export.onnx_export import example_inputs, export_stages
from rgbd_fusion_core.inference.backends import make_backend
from rgbd_fusion_core.models import build_denoiser
from rgbd_fusion_core.runtime.graph_contract import load_exported_stage
from rgbd_fusion_core.runtime.tensorrt_backend import (
    NO_GPU,
    EngineSettings,
    engine_path_for,
    sidecar_path_for,
    stale_reason,
)


def tensorrt_missing() -> str | None:
    if not torch.cuda.is_available():
        return NO_GPU
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT Python package not installed (pip install 'rgbd-fusion[tensorrt]')"
    return None


needs_tensorrt = pytest.mark.skipif(tensorrt_missing() is not None, reason=str(tensorrt_missing()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Tiny-preset stage 1 and 2 with random weights, exported and verified in ONNX Runtime."""
    out = tmp_path_factory.mktemp("trt_export")
    stages = {}
    torch.manual_seed(1)
    for stage in (1, 2):
        config = load_stage_config("tiny", stage)
        module = build_denoiser(config.model).eval()
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.normal_(0, 0.1)
        stages[stage] = (config, module, "random tiny")
    export_stages(stages, out)
    return out, {stage: (config, module) for stage, (config, module, _) in stages.items()}


IDENTITY = {"tensorrt_version": "10.3.0", "onnx_sha256": "ab" * 32, "fp16": True, "gpu": "NVIDIA H100"}


def write_cached_engine(tmp_path, **recorded):
    engine = tmp_path / "stage1.fp16.engine"
    engine.write_bytes(b"engine")
    sidecar_path_for(engine).write_text(json.dumps({**IDENTITY, "max_batch": 8, **recorded}))
    return engine


def test_cached_engine_is_reused_only_when_everything_matches(tmp_path):
    settings = EngineSettings(max_batch=8)
    assert stale_reason(tmp_path / "none.engine", IDENTITY, settings) == "no cached engine"
    engine = write_cached_engine(tmp_path)
    assert stale_reason(engine, IDENTITY, settings) is None
    assert stale_reason(engine, IDENTITY, EngineSettings(max_batch=4)) is None  # a larger engine serves it
    assert "16 requested" in stale_reason(engine, IDENTITY, EngineSettings(max_batch=16))
    assert "tensorrt_version changed" in stale_reason(engine, {**IDENTITY, "tensorrt_version": "10.4.0"}, settings)
    assert "onnx_sha256 changed" in stale_reason(engine, {**IDENTITY, "onnx_sha256": "cd" * 32}, settings)
    assert "gpu changed" in stale_reason(engine, {**IDENTITY, "gpu": "Jetson Orin"}, settings)
    sidecar_path_for(engine).write_text("{not json")
    assert "unreadable" in stale_reason(engine, IDENTITY, settings)


def test_engine_settings_and_paths():
    with pytest.raises(ValueError, match="opt_batch"):
        EngineSettings(max_batch=2, opt_batch=4)
    assert engine_path_for("/x/stage2.onnx", fp16=True).name == "stage2.fp16.engine"
    assert engine_path_for("/x/stage2.onnx", fp16=False).name == "stage2.fp32.engine"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on machines without a GPU")
def test_without_a_gpu_tensorrt_fails_with_a_clear_error(exported, capsys):
    folder, models = exported
    config, module = models[1]
    with pytest.raises(RuntimeError, match=NO_GPU):
        make_backend("tensorrt", config, module, "cuda", source=folder)
    assert main(["build-engine", str(folder), "--fp16"]) == 1
    assert NO_GPU in capsys.readouterr().err


@needs_tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("stage", [1, 2])
def test_fp16_engine_matches_torch(exported, stage):
    folder, models = exported
    config, module = models[stage]
    denoiser = make_backend("tensorrt", config, module, "cuda", source=folder, fp16=True, max_batch=4)
    module = module.cuda()
    for batch in (1, 3):
        x_t, t, cond = (value.cuda() for value in example_inputs(config, batch, seed=batch))
        with torch.no_grad():
            expected = module(x_t, t, cond)
        prediction = denoiser(x_t, t, cond)
        assert prediction.device == denoiser.device and prediction.shape == expected.shape
        scale = float(expected.abs().max())
        assert float((prediction - expected).abs().max()) <= 1e-2 * max(1.0, scale)
        # the time embedding survives fp16: a different timestep gives the torch answer for that timestep
        reversed_t = config.diffusion.timesteps - 1 - t
        with torch.no_grad():
            expected_moved = module(x_t, reversed_t, cond)
        assert float((denoiser(x_t, reversed_t, cond) - expected_moved).abs().max()) <= 1e-2 * max(1.0, scale)


@needs_tensorrt
@pytest.mark.gpu
def test_engine_cache_reuse_rebuild_and_version_mismatch(exported, capsys):
    from rgbd_fusion_core.runtime.tensorrt_backend import build_engine

    folder, _ = exported
    onnx_path = load_exported_stage(folder, 2).onnx_path
    settings = EngineSettings(fp16=True, max_batch=2)
    build_engine(onnx_path, settings)
    assert not build_engine(onnx_path, settings).built
    assert build_engine(onnx_path, settings, rebuild=True).reason == "rebuild requested"
    sidecar = sidecar_path_for(engine_path_for(onnx_path, fp16=True))
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "tensorrt_version": "0.0"}))
    result = build_engine(onnx_path, settings)
    assert result.built and "tensorrt_version changed" in result.reason
    assert main(["build-engine", str(folder), "--fp16", "--max-batch", "2"]) == 0
    assert "up to date" in capsys.readouterr().out.splitlines()[-1]
    assert any(path.name.startswith("timing-trt") for path in folder.iterdir())


@needs_tensorrt
@pytest.mark.gpu
def test_cuda_graph_replay_equals_plain_execution(exported):
    folder, models = exported
    config, module = models[1]
    plain = make_backend("tensorrt", config, module, "cuda", source=folder, fp16=True, max_batch=4)
    graphed = make_backend("tensorrt", config, module, "cuda", source=folder, fp16=True, max_batch=4, cuda_graph=True)
    for batch in (2, 1, 2):
        x_t, t, cond = (value.cuda() for value in example_inputs(config, batch, seed=10 + batch))
        assert torch.allclose(plain(x_t, t, cond), graphed(x_t, t, cond), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="outside the engine's range"):
        plain(*(value.cuda() for value in example_inputs(config, 5)))
