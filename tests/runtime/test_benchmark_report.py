"""The benchmark's JSON report on the tiny preset (torch backend, the pasted masks instead of MediaPipe), and the
space-to-depth input exported as a one-hot strided convolution (identical values, no 6-D transpose)."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
import torch.nn.functional as F

from rgbd_fusion_core.cli.main import main
from rgbd_fusion_core.config import load_stage_config
from rgbd_fusion_core.export.onnx_export import export_stage_onnx, onnx_parity_error
from rgbd_fusion_core.models import build_denoiser
from rgbd_fusion_core.models.blocks import unshuffle_conv


@pytest.fixture(scope="module")
def report(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = ["benchmark", "--model", str(tiny_model_dir), "--backends", "torch", "--repeats", "2", "--threads", "1"]
    assert main([*args, "--finder", "masks", "--peak-size", "256", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_benchmark_reports_interleaved_peaks_and_node_defaults(report):
    assert report["settings"]["steps1"] == 3 and report["settings"]["steps2"] == 2  # PipelineConfig defaults
    assert report["settings"]["frame"] == "640x480" and report["settings"]["finder"] == "masks"
    assert report["settings"]["rounds"] == 2
    peak = report["matmul_peak"]
    # one peak before the rounds, then one after each workload: 2 rounds x (2 stages + 2 frames) + 1
    assert peak["samples"] == 2 * 4 + 1 and 0 < peak["min"] <= peak["median"] <= peak["max"]
    for name in ("stage1", "stage2"):
        stage = report["stages"][name]
        timing = stage["backends"]["torch"]
        assert 0 < timing["ms_min"] <= timing["ms_median"]
        assert 0 < timing["share_of_peak_min"] <= timing["share_of_peak_median"]
        assert stage["fastest_backend"] == "torch" and stage["ms_per_eval"] == timing["ms_median"]
    assert report["nfe_per_frame"] == 5


def test_benchmark_frame_shares_people_and_batching(report):
    e2e = report["end_to_end"]["torch"]
    for name, people in (("one_person", 1), ("three_people", 3)):
        frame = e2e[name]
        assert frame["people_found"] == people
        assert 0 < frame["ms_per_frame_min"] <= frame["ms_per_frame_median"]
        assert frame["frames_per_s"] == pytest.approx(1000 / frame["ms_per_frame_median"])
        assert set(frame["ms_per_step"]) == {"people", "crop", "stage1", "stage2", "metric"}
        assert set(frame["share_of_frame"]) == {"finder", "stage1", "stage2", "rest"}
        assert sum(frame["share_of_frame"].values()) == pytest.approx(1.0)
        assert 0 < frame["network_share_of_peak_min"] <= frame["network_share_of_peak_median"]
        assert frame["frame_share_of_peak_median"] < frame["network_share_of_peak_median"]
    # the three people of one frame go through each stage together: one call per step, batch 3
    three = e2e["three_people"]
    assert three["denoiser_calls"] == {"stage1": 3, "stage2": 2}
    assert three["batch_sizes"] == {"stage1": [3, 3, 3], "stage2": [3, 3]}
    assert e2e["three_people_time_vs_one"] == pytest.approx(
        three["ms_per_frame_median"] / e2e["one_person"]["ms_per_frame_median"]
    )
    assert e2e["batching_speedup"]["frame"] == pytest.approx(3 / e2e["three_people_time_vs_one"])
    assert all(isinstance(value, bool) for value in report["targets"].values())


@pytest.mark.parametrize(("channels", "factor"), [(5, 4), (4, 2), (1, 3)])
def test_unshuffle_conv_is_pixel_unshuffle_exactly(channels, factor):
    x = torch.randn(3, channels, 12 * factor, 6 * factor) * 1e3
    assert torch.equal(unshuffle_conv(x, factor), F.pixel_unshuffle(x, factor))


def test_exported_space_to_depth_input_is_a_convolution(tmp_path):
    config = load_stage_config("tiny", 2)
    assert config.model.space_to_depth > 1
    torch.manual_seed(0)
    module = build_denoiser(config.model).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.1)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    path = export_stage_onnx(module, config, tmp_path / "stage2.onnx")
    assert module.state_dict().keys() == state.keys()  # no new state: shipped weights load unchanged
    graph = onnx.load(path).graph
    producers = {output: node for node in graph.node for output in node.output}
    first_conv = next(node for node in graph.node if node.op_type == "Conv")
    assert producers[first_conv.input[0]].op_type == "Concat"  # straight from concat(x_t, cond), no transpose
    assert first_conv.attribute and {a.name: list(a.ints) for a in first_conv.attribute}["strides"] == [4, 4]
    six_d = [n for n in graph.node if n.op_type == "Transpose" and len(n.attribute[0].ints) == 6]
    assert six_d == []  # the reshape + 6-D transpose of a traced pixel_unshuffle is gone
    assert onnx_parity_error(module, config, path) <= 1e-5


def test_conv_only_static_int8_quantization_runs_in_onnxruntime(tmp_path):
    """quantize_stage turns every Conv into a QDQ (int8) one and the graph still runs close to fp32."""
    from rgbd_fusion_core.export.onnx_export import example_inputs
    from rgbd_fusion_core.export.quantize import quantize_stage
    from rgbd_fusion_core.runtime.onnxruntime_backend import OnnxRuntimeDenoiser

    config = load_stage_config("tiny", 1)
    torch.manual_seed(0)
    module = build_denoiser(config.model).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.1)
    fp32 = export_stage_onnx(module, config, tmp_path / "fp32.onnx")
    feeds = [{k: v.numpy() for k, v in zip(("x_t", "t", "cond"), example_inputs(config, 1, seed))} for seed in range(4)]
    int8 = quantize_stage(fp32, tmp_path / "int8.onnx", feeds)
    ops = [node.op_type for node in onnx.load(int8).graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("Conv") > 0
    inputs = example_inputs(config, 2, seed=9)
    with torch.no_grad():
        expected = module(*inputs)
    got = OnnxRuntimeDenoiser(int8, threads=1)(*inputs)
    assert got.shape == expected.shape
    assert float((got - expected).abs().mean()) < 0.1 * float(expected.abs().mean()) + 1e-3
