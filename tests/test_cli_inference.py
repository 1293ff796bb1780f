"""The predict and demo commands end to end on real files (tiny model; the shipped model is tested elsewhere)."""

import json

import cv2
import numpy as np

from rgbd_fusion_core.apps.demo_run import BUNDLED_FRAMES
from rgbd_fusion_core.cli.main import main


def read_ply_vertex_count(path) -> int:
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert header.startswith("ply\nformat binary_little_endian 1.0")
    return int(next(line.split()[-1] for line in header.splitlines() if line.startswith("element vertex")))


def test_predict_writes_depth_cloud_and_figure(tiny_model_dir, tmp_path):
    frame = BUNDLED_FRAMES / "256" / "rgb" / "s0000_v00.png"
    camera = tmp_path / "camera.json"
    camera.write_text(json.dumps({"fx": 300.0, "fy": 300.0, "cx": 127.5, "cy": 127.5}))
    out = tmp_path / "out"
    args = [
        "predict",
        str(frame),
        "--camera",
        str(camera),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--steps1",
        "2",
        "--steps2",
        "1",
        "--full-frame",
    ]
    assert main(args) == 0
    depth_mm = cv2.imread(str(out / "depth.png"), cv2.IMREAD_UNCHANGED)
    depth_m = np.load(out / "depth.npy")
    assert depth_mm.dtype == np.uint16 and depth_mm.shape == depth_m.shape == (256, 256)
    finite = np.isfinite(depth_m)
    np.testing.assert_allclose(depth_mm[finite] / 1000.0, depth_m[finite], atol=5e-4)
    assert (depth_mm[~finite] == 0).all()
    assert read_ply_vertex_count(out / "points.ply") == finite.sum()
    assert cv2.imread(str(out / "figure.png")).shape == (256, 768, 3)
    summary = json.loads((out / "result.json").read_text())
    assert summary["nfe"] == 3 and np.allclose(summary["K_crop"][0][0], 300.0)
    assert np.load(out / "depth_full.npy").shape == (256, 256)


def test_predict_reports_bad_input(tiny_model_dir, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert main(["predict", str(broken), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")]) == 1
    assert "broken.png" in capsys.readouterr().err
    image = tmp_path / "ok.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    camera = tmp_path / "camera.yaml"
    camera.write_text("K: [[0, 0, 0], [0, 0, 0], [0, 0, 1]]\n")
    code = main(["predict", str(image), "--camera", str(camera), "--model", str(tiny_model_dir), "--out", "o"])
    assert code == 1 and "focal lengths must be positive" in capsys.readouterr().err


def test_demo_prints_metrics_and_writes_outputs(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--model",
                str(tiny_model_dir),
                "--out",
                str(out),
                "--limit",
                "2",
                "--steps1",
                "2",
                "--steps2",
                "1",
            ]
        )
        == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    summary = report["summary"]
    assert summary["frames"] == 2 and summary["nfe_per_frame"] == 3
    for key in ("iou", "mae", "mse", "mae_mm_shape", "mae_mm_absolute", "frames_per_s", "z_ref_error_m_median"):
        assert key in summary
    assert (out / "figure.png").exists() and (out / "s0000_v00" / "points.ply").exists()
    assert '"frames_per_s"' in capsys.readouterr().out
