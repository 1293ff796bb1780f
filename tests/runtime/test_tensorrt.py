"""Native TensorRT engines built from the same ONNX that ONNX Runtime verifies. The GPU tests skip here (no
NVIDIA GPU); the engine-cache rules, the batch splitting, the CUDA-graph fallback, the layer-precision report, the
ONNX Runtime provider-fallback warning and the clear errors are checked everywhere (only the CUDA execution itself
is replaced by a CPU stand-in)."""

import json
import logging
import warnings
from pathlib import Path

import pytest
import torch

from rgbd_fusion_core.cli.main import build_parser, main
from rgbd_fusion_core.config import load_stage_config
from rgbd_fusion_core.export.onnx_export import example_inputs, export_stages
from rgbd_fusion_core.inference.backends import make_backend
from rgbd_fusion_core.models import build_denoiser
from rgbd_fusion_core.models.checkpoint import load_stage_model
from rgbd_fusion_core.models.model_files import resolve_model_dir
from rgbd_fusion_core.runtime.graph_contract import load_exported_stage
from rgbd_fusion_core.runtime.onnxruntime_backend import warn_on_provider_fallback
from rgbd_fusion_core.runtime.tensorrt_backend import (
    NO_GPU,
    EngineSettings,
    TensorRTDenoiser,
    engine_path_for,
    sidecar_path_for,
    stale_reason,
    summarise_layer_precisions,
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


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped model (T = 600 / 1000), exported: fp16 damage to the time embedding shows at its large t."""
    out = tmp_path_factory.mktemp("trt_shipped")
    stages = {s: (*load_stage_model(p, expected_stage=s), str(p)) for s, p in zip((1, 2), resolve_model_dir(None))}
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


def test_build_engine_cli_builds_the_api_default_engine():
    """No precision flag: the engine settings' default (fp16), the API's; no folder: the model's cached export."""
    assert EngineSettings().fp16
    parse = build_parser().parse_args
    args = parse(["build-engine"])
    assert args.fp16 is None and args.folder is None and args.max_batch is None
    assert parse(["build-engine", "x", "--fp32"]).fp16 is False
    assert parse(["build-engine", "x", "--fp16"]).fp16 is True


class CpuStandInEngine(TensorRTDenoiser):
    """The denoiser's own batching and CUDA-graph logic; only the CUDA execution and capture are replaced."""

    def __init__(self, max_batch: int, cuda_graph: bool = False):
        self.engine_path, self.device, self.max_batch = Path("stand-in.engine"), torch.device("cpu"), max_batch
        self.cuda_graph, self.graphs, self.split_warned = cuda_graph, {}, False
        self.batches, self.captures = [], 0

    def _run(self, inputs):
        self.batches.append(inputs["x_t"].shape[0])
        return network(inputs["x_t"], inputs["t"], inputs["cond"])

    def _capture(self, inputs):
        self.captures += 1
        raise RuntimeError("operation not permitted when stream is capturing")


def network(x_t, t, cond):
    return 2 * x_t + t.view(-1, 1, 1, 1) + cond.mean(1, keepdim=True)


def stand_in_inputs(batch):
    return torch.randn(batch, 1, 4, 4), torch.arange(batch, dtype=torch.float32), torch.randn(batch, 3, 4, 4)


def test_a_batch_above_the_engine_max_runs_in_parts_with_one_warning(caplog):
    engine = CpuStandInEngine(max_batch=3)
    inputs = stand_in_inputs(7)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(engine(*inputs), network(*inputs))
        engine(*inputs)
    assert engine.batches == [3, 3, 1, 3, 3, 1]
    assert len(caplog.records) == 1 and "batch 7 is above the engine's max batch 3" in caplog.text
    with pytest.raises(ValueError, match="empty batch"):
        engine(*stand_in_inputs(0))


def test_a_failed_cuda_graph_capture_falls_back_to_plain_execution_with_one_warning(caplog):
    engine = CpuStandInEngine(max_batch=4, cuda_graph=True)
    with caplog.at_level(logging.WARNING):
        for batch in (2, 3):
            inputs = stand_in_inputs(batch)
            assert torch.equal(engine(*inputs), network(*inputs))
    assert engine.captures == 1 and not engine.cuda_graph and engine.batches == [2, 3]
    assert len(caplog.records) == 1 and "CUDA graph capture failed" in caplog.text


def inspector_layer(name, *outputs):
    """One layer of the engine inspector's DETAILED JSON (TensorRT 10 keys)."""
    tensors = [{"Name": tensor, "Location": "Device", "Format/Datatype": kind} for tensor, kind in outputs]
    return {"Name": name, "LayerType": "CaskConvolution", "Outputs": tensors}


def test_engine_layer_precisions_are_counted_and_a_pinned_fp16_tensor_is_a_warning(caplog):
    layers = [
        inspector_layer("/emb/Mul", ("/emb/Mul_output_0", "Row major linear FP32 format")),
        inspector_layer("/emb/Sin", ("/emb/Sin_output_0", "Row major linear FP16 format")),
        inspector_layer("/conv + /act", ("/act_output_0", "Channel major FP16 format where channel % 8 == 0")),
        inspector_layer("/conv2", ("/conv2_output_0", "Half")),
        inspector_layer("/out", ("prediction", "Float")),
        inspector_layer("/shape", ("/shape_output_0", "Row major linear Int64 format")),
    ]
    pinned = {"/emb/Mul_output_0", "/emb/Sin_output_0", "/emb/fused_inside_myelin"}
    with caplog.at_level(logging.INFO):
        counts = summarise_layer_precisions(layers, pinned, Path("stage1.onnx"))
    assert counts == {"fp32": 2, "fp16": 3, "other": 1}
    assert "2 of 3 fp32-pinned tensors visible" in caplog.text
    warnings_logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1 and "/emb/Sin_output_0 (Row major linear FP16 format)" in warnings_logged[0]


def test_onnxruntime_falling_back_from_the_requested_provider_is_one_warning(exported, caplog):
    """This onnxruntime has no CUDA provider: asked for it, the session quietly runs on the CPU."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider, so asking for it does not fall back")
    onnx_path = load_exported_stage(exported[0], 1).onnx_path
    requested = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxruntime's own UserWarning about the unavailable provider
        session = ort.InferenceSession(str(onnx_path), providers=requested)
    with caplog.at_level(logging.WARNING):
        warn_on_provider_fallback(onnx_path, ["CPUExecutionProvider"], session.get_providers())
        assert not caplog.records
        warn_on_provider_fallback(onnx_path, requested, session.get_providers())
    assert len(caplog.records) == 1
    assert "could not start CUDAExecutionProvider and fell back to CPUExecutionProvider" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on machines without a GPU")
def test_without_a_gpu_tensorrt_fails_with_a_clear_error(exported, capsys):
    folder, models = exported
    config, module = models[1]
    with pytest.raises(RuntimeError, match=NO_GPU):
        make_backend("tensorrt", config, module, "cuda", source=folder)
    assert main(["build-engine", str(folder), "--fp16"]) == 1
    assert main(["build-engine"]) == 1  # the model's cached export: the same error before any export work
    assert NO_GPU in capsys.readouterr().err


@needs_tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("stage", [1, 2])
def test_fp16_engine_matches_torch_at_the_shipped_models_large_timesteps(shipped, stage):
    """At T = 600 / 1000 and t >= 512, fp16 (spacing 0.5 there) would wreck the sinusoidal time embedding."""
    folder, models = shipped
    config, module = models[stage]
    timesteps = config.diffusion.timesteps
    assert timesteps == (600, 1000)[stage - 1]
    denoiser = make_backend("tensorrt", config, module, "cuda", source=folder, fp16=True, max_batch=4)
    module = module.cuda()
    for batch in (1, 4):
        x_t, _, cond = (value.cuda() for value in example_inputs(config, batch, seed=batch))
        t = torch.linspace(timesteps - 1, 512, batch, device="cuda").round()
        with torch.no_grad():
            expected = module(x_t, t, cond)
        prediction = denoiser(x_t, t, cond)
        assert prediction.device == denoiser.device and prediction.shape == expected.shape
        scale = float(expected.abs().max())
        assert float((prediction - expected).abs().max()) <= 1e-2 * max(1.0, scale)


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
    x_t, t, cond = (value.cuda() for value in example_inputs(config, 5))  # above max batch 4: in two parts
    parts = torch.cat([plain(x_t[:4], t[:4], cond[:4]), plain(x_t[4:], t[4:], cond[4:])])
    assert torch.allclose(plain(x_t, t, cond), parts, rtol=0, atol=1e-5)
