#!/usr/bin/env python3
"""Gathers real photos of people that ship inside installable packages into a folder (not committed).

Usage: python scripts/fetch_real_photos.py OUT_DIR   (needs apt-get and dpkg-deb for the Debian part; run
with the project's venv so scikit-image, matplotlib and OpenCV are found).

Sources and licences, as far as they can be told:
- scikit-image (PyPI `scikit-image`, data shipped in the wheel):
  astronaut.png  Eileen Collins, NASA; "no known copyright restrictions, released into the public domain".
  camera.png     a man with a camera on a tripod; "CC0 by the photographer (Lav Varshney)".
- matplotlib (PyPI `matplotlib`, mpl-data/sample_data):
  grace_hopper.jpg  US Navy portrait of Grace Hopper; a US government work, so public domain (no licence note
  in the package).
- Debian `opencv-doc` (apt-get download opencv-doc; files under usr/share/doc/opencv-doc/examples/), OpenCV's
  sample data, covered by the package's Apache-2.0 AND BSD-3-Clause copyright file; the photos' own origins
  are not stated:
  vtest.avi        795 frames, 768x576, 10 fps, people walking across a campus (about 60-120 px tall); a few
                   frames are also written as vtest_NNN.png when OpenCV is importable.
  messi5.jpg       footballers on a pitch.
  basketball1.png, basketball2.png  two people in a room (grey, two frames of one sequence).
  scenetext01.jpg  a street with one small person.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

OPENCV_DOC_FILES = {
    "examples/data/vtest.avi": "vtest.avi",
    "examples/data/messi5.jpg": "messi5.jpg",
    "examples/data/basketball1.png": "basketball1.png",
    "examples/data/basketball2.png": "basketball2.png",
    "examples/text/scenetext01.jpg": "scenetext01.jpg",
}
VTEST_FRAMES = (0, 100, 200, 300, 400, 500, 600, 700)


def package_dir(name: str) -> Path | None:
    spec = find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def copy_python_photos(out: Path) -> list[str]:
    found = []
    skimage_data = package_dir("skimage.data") if find_spec("skimage") else None
    for name in ("astronaut.png", "camera.png"):
        if skimage_data and (skimage_data / name).is_file():
            shutil.copy(skimage_data / name, out / name)
            found.append(name)
    mpl = package_dir("matplotlib")
    hopper = mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg" if mpl else None
    if hopper and hopper.is_file():
        shutil.copy(hopper, out / "grace_hopper.jpg")
        found.append("grace_hopper.jpg")
    return found


def copy_opencv_doc(out: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        root = Path(tmp) / "x" / "usr" / "share" / "doc" / "opencv-doc"
        found = []
        for source, name in OPENCV_DOC_FILES.items():
            if (root / source).is_file():
                shutil.copy(root / source, out / name)
                found.append(name)
    return found


def write_vtest_frames(out: Path) -> list[str]:
    if not (out / "vtest.avi").is_file() or find_spec("cv2") is None:
        return []
    import cv2

    video = cv2.VideoCapture(str(out / "vtest.avi"))
    found = []
    for index in VTEST_FRAMES:
        video.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = video.read()
        if ok:
            cv2.imwrite(str(out / f"vtest_{index:03d}.png"), frame)
            found.append(f"vtest_{index:03d}.png")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    found = copy_python_photos(out)
    try:
        found += copy_opencv_doc(out)
    except (OSError, subprocess.CalledProcessError, StopIteration) as error:
        print(f"opencv-doc skipped: {error}", file=sys.stderr)
    found += write_vtest_frames(out)
    print("\n".join(found))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
