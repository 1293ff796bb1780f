"""The predict and demo commands end to end on real files (tiny model; the shipped model is tested elsewhere)."""

import json

import cv2
import numpy as np
import pytest

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
    size = summary["crop_box_xy_size"][2]  # the crop comes from the person the finder found
    assert summary["nfe"] == 3 and np.allclose(summary["K_crop"][0][0], 300.0 * 256 / size)
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
    assert sum(summary["z_ref_sources"].values()) == 2  # every frame's scale counted by where it came from
    for key in ("iou", "mae", "mse", "mae_mm_shape", "mae_mm_absolute", "frames_per_s", "z_ref_error_m_median"):
        assert key in summary
    assert (out / "figure.png").exists() and (out / "s0000_v00" / "points.ply").exists()
    assert '"frames_per_s"' in capsys.readouterr().out


def test_predict_refuses_camera_files_that_do_not_fit_naming_the_file_and_field(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((480, 640, 3), np.uint8))
    ros_yaml = "image_width: 1280\nimage_height: 960\ncamera_matrix:\n  data: [1000, 0, 640, 0, 1000, 480, 0, 0, 1]\n"
    cases = {
        "wrong_size.yaml": (ros_yaml, "is for a 1280x960 image but the image is 640x480"),
        "short_k.yaml": ("K: [1, 2, 3]\n", "K must hold 9 numbers, got 3"),
        "text_fx.yaml": ("fx: abc\nfy: 500\ncx: 320\ncy: 240\n", "fx must be numbers"),
        "nan_cx.yaml": ("fx: 500\nfy: 500\ncx: .nan\ncy: 240\n", "cx is nan"),
        "huge_fx.yaml": ("fx: 1.0e+30\nfy: 500\ncx: 320\ncy: 240\n", "fx=1e+30 px is implausible"),
        "centre_far_off.yaml": ("fx: 500\nfy: 500\ncx: 5000\ncy: 240\n", "cx=5000 px lies far outside the 640x480"),
        "no_data.yaml": ("camera_matrix: 3\n", "camera_matrix must be a mapping"),
    }
    for name, (text, problem) in cases.items():
        camera = tmp_path / name
        camera.write_text(text)
        args = ["predict", str(image), "--camera", str(camera), "--model", str(tiny_model_dir)]
        assert main([*args, "--out", str(tmp_path / "o")]) == 1, name
        error = capsys.readouterr().err
        assert f"{camera}: " in error and problem in error, (name, error)
        assert "Traceback" not in error
    assert not (tmp_path / "o").exists()


def test_a_missing_optional_package_names_the_extra(monkeypatch, capsys, tmp_path):
    """demo --synthetic without the synth extra: one line naming the extra, not a traceback."""
    import sys

    from rgbd_fusion_core.cli.main import main

    # anny and the synth modules that already hold it (an earlier test may have rendered) import afresh
    for name in [m for m in sys.modules if m.split(".")[0] == "anny" or m.startswith("rgbd_fusion_core.synth")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "anny", None)  # import anny -> ModuleNotFoundError
    code = main(["demo", "--synthetic", "1", "--out", str(tmp_path / "out"), "--backend", "torch"])
    assert code == 1
    assert "needs anny, which is not installed: pip install 'rgbd-fusion[synth]'" in capsys.readouterr().err


def photo_with_focal_length(path, focal_35mm: int | None, size=(400, 300)):
    """A JPEG photo (frame s0000_v00 resized to ``size``) whose EXIF holds FocalLengthIn35mmFilm (None: no EXIF)."""
    from PIL import Image

    from rgbd_fusion_core.io.camera_file import EXIF_IFD, FOCAL_LENGTH_35MM

    rgb = cv2.cvtColor(cv2.imread(str(BUNDLED_FRAMES / "256" / "rgb" / "s0000_v00.png")), cv2.COLOR_BGR2RGB)
    image = Image.fromarray(cv2.resize(rgb, size))
    exif = image.getexif()
    if focal_35mm is not None:
        exif.get_ifd(EXIF_IFD)[FOCAL_LENGTH_35MM] = focal_35mm
    image.save(path, exif=exif)
    return path


def test_a_photos_exif_focal_length_gives_its_intrinsics(tiny_model_dir, tmp_path, capsys):
    from rgbd_fusion_core.io.camera_file import exif_intrinsics

    phone = photo_with_focal_length(tmp_path / "phone.jpg", 26)  # a phone's main camera, 26 mm equivalent
    f = 26 / 43.27 * 500  # the 35 mm frame's diagonal is 43.27 mm; this photo's is 500 px
    np.testing.assert_allclose(exif_intrinsics(phone, 400, 300), [[f, 0, 199.5], [0, f, 149.5], [0, 0, 1]])
    assert exif_intrinsics(photo_with_focal_length(tmp_path / "plain.jpg", None), 400, 300) is None
    assert exif_intrinsics(photo_with_focal_length(tmp_path / "zero.jpg", 0), 400, 300) is None
    assert exif_intrinsics(BUNDLED_FRAMES / "256" / "rgb" / "s0000_v00.png", 256, 256) is None
    args = ["predict", str(phone), "--model", str(tiny_model_dir), "--out", str(tmp_path / "out")]
    assert main(args + ["--person-source", "none", "--steps1", "1", "--steps2", "1"]) == 0
    assert f"EXIF 35 mm equivalent focal length (fx = {f:.1f} px)" in capsys.readouterr().out


def test_predict_takes_a_field_of_view_instead_of_intrinsics(tiny_model_dir, tmp_path, capsys):
    phone = photo_with_focal_length(tmp_path / "phone.jpg", 26)  # the flag wins over the EXIF focal length
    args = ["predict", str(phone), "--model", str(tiny_model_dir), "--steps1", "1", "--steps2", "1"]
    assert main([*args, "--person-source", "none", "--fov", "90", "--out", str(tmp_path / "out")]) == 0
    assert "no --camera given" not in capsys.readouterr().out
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    # 90 degrees across 400 px: fx = 200 px in the frame, in the 256 px crop of the centred 300 px square: 170.7
    assert written["K_crop"][0][0] == pytest.approx(200 * 256 / 300, rel=1e-4)
    for bad in (["--fov", "0"], ["--fov", "180"], ["--fov", "60", "--camera", str(tmp_path / "c.yaml")]):
        assert main([*args, *bad, "--out", str(tmp_path / "bad")]) == 1
        assert "--fov" in capsys.readouterr().err


def test_predict_says_when_the_pose_puts_the_person_implausibly_near(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="the person finder needs mediapipe==0.10.21 (CPython 3.9-3.12 wheels)")
    photo = photo_with_focal_length(tmp_path / "person.jpg", None)
    args = ["predict", str(photo), "--model", str(tiny_model_dir), "--steps1", "1", "--steps2", "1"]
    for fov, near in ((60, False), (160, True)):  # a far too wide field of view shrinks the person's distance
        assert main([*args, "--fov", str(fov), "--out", str(tmp_path / str(fov))]) == 0
        out = capsys.readouterr().out
        assert "(pose)" in out and ("nearer than people are photographed" in out) == near, out
