"""Paths that had no test, on tiny data: evaluate and benchmark end to end, pack-model and a tampered model
folder, the ROI crop, and the ROS camera-calibration YAML in the camera-file reader."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from rgbd_fusion_core.cli.main import main
from rgbd_fusion_core.geometry.camera import crop_intrinsics
from rgbd_fusion_core.geometry.crop import resize_area, roi_box
from rgbd_fusion_core.inference.pipeline import Pipeline
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig
from rgbd_fusion_core.io.camera_file import read_camera_file
from rgbd_fusion_core.io.hashing import sha256_file
from rgbd_fusion_core.models.checkpoint import CheckpointError

METRIC_KEYS = ("mae", "mse", "iou", "mae_mm", "rmse_mm", "abs_rel", "coverage", "chamfer_mm", "nfe", "ms_per_frame")


def test_evaluate_end_to_end_writes_the_report(tiny_model_dir, rendered_dataset, tmp_path, capsys):
    report_path, figure = tmp_path / "report.json", tmp_path / "figure.png"
    args = ["evaluate", "--stage1", str(tiny_model_dir / "stage1.safetensors")]
    args += ["--stage2", str(tiny_model_dir / "stage2.safetensors"), "--data", str(rendered_dataset)]
    args += ["--steps1", "2", "--steps2", "1", "--limit", "2", "--batch-size", "2", "--threads", "1"]
    assert main([*args, "--json", str(report_path), "--figure", str(figure)]) == 0
    report = json.loads(report_path.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert report["split"] == "test" and report["samples"] == 2 and report["sampler"] == "dpmpp2m"
    assert report["steps"] == {"stage1": 2, "stage2": 1}
    expected_nfe = {"stage1": 2, "stage2_gt_low": 1, "end_to_end": 3}
    for part, nfe in expected_nfe.items():
        scores = report[part]
        for key in METRIC_KEYS:
            assert np.isfinite(scores[key]), (part, key)
        assert scores["nfe"] == nfe, part
        assert 0 <= scores["iou"] <= 1 and 0 <= scores["coverage"] <= 1, part
        assert scores["mae"] >= 0 and scores["mse"] >= scores["mae"] ** 2 - 1e-6, part  # Jensen
        assert scores["rmse_mm"] >= scores["mae_mm"] >= 0, part
        assert 0 <= scores["within_1cm"] <= scores["within_2cm"] <= scores["within_5cm"] <= 1, part
    image = cv2.imread(str(figure))
    assert image is not None and image.shape[0] > 0


def test_benchmark_json_keys_and_shares(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["benchmark", "--model", str(tiny_model_dir), "--backends", "torch", "--repeats", "1"]
    assert main([*args, "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert report["threads"] == 1 and report["matmul_peak_gflops"] > 0
    nfe = 0
    gflop = 0.0
    for name in ("stage1", "stage2"):
        stage = report["stages"][name]
        assert stage["ms_per_eval"] > 0 and stage["gflop_per_eval"] > 0 and stage["nfe_per_frame"] >= 1
        assert stage["achieved_gflops"] == pytest.approx(stage["gflop_per_eval"] / (stage["ms_per_eval"] / 1000))
        assert 0 < stage["share_of_matmul_peak"] <= 1
        nfe += stage["nfe_per_frame"]
        gflop += stage["nfe_per_frame"] * stage["gflop_per_eval"]
    assert report["nfe_per_frame"] == nfe and report["gflop_per_frame"] == pytest.approx(gflop)
    torch_run = report["end_to_end"]["torch"]
    assert set(report["end_to_end"]) == {"torch"}
    assert torch_run["frames_per_s"] == pytest.approx(1000 / torch_run["ms_per_frame"])
    assert sum(torch_run["ms_per_step"].values()) <= torch_run["ms_per_frame"] * 1.5 + 5
    assert "onnxruntime_speedup_vs_torch" not in report
    assert all(isinstance(value, bool) for value in report["targets"].values())
    assert main([*args, "--backends", "tensorrt"]) == 1  # not one of the benchmark's: refused before any work
    assert "unknown backend 'tensorrt'; choose from torch, onnxruntime, onnxruntime-int8" in capsys.readouterr().err


def test_pack_model_writes_a_verified_folder_and_tampering_is_refused(tiny_model_dir, tmp_path, capsys):
    packed = tmp_path / "packed"
    args = ["pack-model", "--stage1", str(tiny_model_dir / "stage1.safetensors")]
    assert main([*args, "--stage2", str(tiny_model_dir / "stage2.safetensors"), "--out", str(packed)]) == 0
    manifest = json.loads((packed / "manifest.json").read_text())
    assert set(manifest["sha256"]) == {"stage1.safetensors", "stage2.safetensors"}
    printed = capsys.readouterr().out
    for name, digest in manifest["sha256"].items():
        assert sha256_file(packed / name) == digest == sha256_file(tiny_model_dir / name)
        assert f"{packed}/{name}  sha256 {digest}" in printed
    Pipeline.from_pretrained(packed, device="cpu")  # loads and verifies

    data = bytearray((packed / "stage2.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit pattern in the weights
    (packed / "stage2.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"stage2.safetensors is corrupt: sha256 .* does not match"):
        Pipeline.from_pretrained(packed, device="cpu")
    (packed / "stage2.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks"):
        Pipeline.from_pretrained(packed, device="cpu")


def test_pack_model_refuses_stages_in_the_wrong_order(tiny_model_dir, tmp_path, capsys):
    args = ["pack-model", "--stage1", str(tiny_model_dir / "stage2.safetensors")]
    args += ["--stage2", str(tiny_model_dir / "stage1.safetensors"), "--out", str(tmp_path / "packed")]
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "rgbd-fusion pack-model: error:" in error and "stage" in error and "Traceback" not in error
    assert not (tmp_path / "packed" / "manifest.json").exists()


def test_roi_crop_mode_crops_around_the_region(tiny_model_dir):
    config = PipelineConfig(steps1=1, steps2=1, seed=0, crop_mode="roi", reference_depth="fixed")
    pipeline = Pipeline.from_pretrained(tiny_model_dir, device="cpu", config=config)
    rgb = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    K = np.array([[300.0, 0, 159.5], [0, 320.0, 119.5], [0, 0, 1]])
    roi = (200, 40, 60, 150)  # right of centre: a centre crop would be elsewhere
    result = pipeline(Frame(rgb, K, roi=roi))
    box = roi_box(roi, rgb.shape[:2], config.crop_margin)
    assert tuple(result.crop_box) == tuple(box)
    x0, y0, size = box
    assert x0 <= 200 and y0 <= 40 and x0 + size >= 260 and y0 + size >= 190  # the square holds the region
    np.testing.assert_allclose(result.K_crop, crop_intrinsics(K, x0, y0, size, result.depth.shape[0]))
    np.testing.assert_array_equal(result.rgb_crop, resize_area(rgb[y0 : y0 + size, x0 : x0 + size], 256))
    with pytest.raises(ValueError, match="roi"):
        pipeline(Frame(rgb, K, roi=(400, 10, 20, 20)))  # outside the 320x240 image


ROS_CALIBRATION_YAML = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [525.5, 0.0, 318.25, 0.0, 531.75, 241.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.01, -0.02, 0.0, 0.0, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [525.5, 0.0, 318.25, 0.0, 0.0, 531.75, 241.5, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_camera_file_reads_the_ros_calibration_yaml(tmp_path):
    path = tmp_path / "camera.yaml"
    path.write_text(ROS_CALIBRATION_YAML)
    K = read_camera_file(path)
    np.testing.assert_array_equal(K, [[525.5, 0.0, 318.25], [0.0, 531.75, 241.5], [0.0, 0.0, 1.0]])
    assert K.dtype == np.float64
