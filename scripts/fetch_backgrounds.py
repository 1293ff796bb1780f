"""Fetch real background photographs from Debian wallpaper packages (no install: ``apt-get download`` +
``dpkg-deb -x``) into a folder usable as ``rgbd-fusion make-dataset --background-dir``.

Usage: ``python scripts/fetch_backgrounds.py OUT_DIR [--max-side 1280] [--packages ...]``

Keeps photographs only: vector files are skipped, and so are images whose name marks them as abstract art or whose
colour statistics look synthetic (little fine texture, few distinct colours). Large photos are downscaled (longest
side ``--max-side``, area interpolation) and written as high-quality JPEG. ``OUT_DIR/LICENSES.txt`` lists each file
with its source package, original path and the licence named for it in the package's ``debian/copyright``.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

PACKAGES = ("lomiri-wallpapers-16.04", "mate-backgrounds", "plasma-workspace-wallpapers")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ABSTRACT_WORDS = (
    "abstract",
    "gradient",
    "pattern",
    "stripe",
    "logo",
    "flow",
    "next",
    "vector",
    "wave",
    "default",
    "ubuntu",
    "lomiri",
    "mate-",
    "desktop",
    "kde",
    "plasma",
    "breeze",
    "aurora",
    "tile",
)


def parse_copyright(text: str) -> list[tuple[list[str], str]]:
    """(file patterns, licence name) per ``Files:`` stanza of a machine-readable debian/copyright."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", block, re.MULTILINE)
        licence = re.search(r"^License:[ \t]*(\S.*)$", block, re.MULTILINE)
        if files and licence:
            stanzas.append((files.group(1).split(), licence.group(1).strip()))
    return stanzas


def licence_for(path: Path, stanzas: list[tuple[list[str], str]]) -> str:
    """Licence of the last stanza whose pattern matches the file (Debian's rule: later stanzas win); patterns are
    source-tree paths, so the installed path's tail and base name are tried."""
    found = "see debian/copyright"
    parts = path.parts
    for patterns, licence in stanzas:
        for pattern in patterns:
            tails = ["/".join(parts[i:]) for i in range(len(parts))]
            if pattern == "*" or any(fnmatch.fnmatch(tail, pattern) for tail in tails):
                found = licence
            elif "/" in pattern and fnmatch.fnmatch(path.name, pattern.rsplit("/", 1)[1]) and "*" not in pattern:
                found = licence
    return found


def photo_statistics(image: np.ndarray) -> tuple[float, int]:
    """(fine-texture energy, distinct 5-bit colours) of a BGR uint8 image at 256 px."""
    small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = small.mean(axis=2)
    texture = float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5)).mean())
    colours = len(np.unique((small.astype(np.uint8) >> 3).reshape(-1, 3), axis=0))
    return texture, colours


def looks_like_photo(path: Path, image: np.ndarray) -> tuple[bool, str]:
    name = path.name.lower()
    if any(word in name for word in ABSTRACT_WORDS):
        return False, "name"
    texture, colours = photo_statistics(image)
    if texture < 2.3 or colours < 500:
        return False, f"statistics (texture {texture:.2f}, colours {colours})"
    return True, f"texture {texture:.2f}, colours {colours}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder of photos (created)")
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES))
    parser.add_argument("--max-side", type=int, default=1280, help="downscale larger photos to this longest side")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    licences, largest = [], {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for package in args.packages:
            result = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True)
            debs = sorted(work.glob(f"{package}_*.deb"))
            if result.returncode or not debs:
                print(f"skip {package}: apt-get download failed: {result.stderr.strip()}", file=sys.stderr)
                continue
            root = work / package
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
            copyright_files = sorted(root.glob("usr/share/doc/*/copyright"))
            stanzas = parse_copyright(copyright_files[0].read_text(errors="replace")) if copyright_files else []
            kept = 0
            for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                if "screenshot" in str(path).lower() or "/contents/images_dark/" in str(path).lower():
                    continue
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None or min(image.shape[:2]) < 256:
                    continue
                photo, reason = looks_like_photo(path, image)
                relative = path.relative_to(root)
                if not photo:
                    print(f"  not a photo ({reason}): {relative}")
                    continue
                # plasma keeps several sizes of one wallpaper: keep the largest of each (named after the theme)
                stem = relative.parts[-4] if "contents" in relative.parts[-3:-1] else path.stem
                stem = re.sub(r"_\d+x\d+$", "", stem)  # mate ships sizes as NAME_WxH
                name = f"{package}__{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)}.jpg"
                target = args.out / name
                pixels = image.shape[0] * image.shape[1]
                if largest.get(name, 0) >= pixels:
                    continue
                largest[name] = pixels
                scale = args.max_side / max(image.shape[:2])
                if scale < 1:
                    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                licences = [entry for entry in licences if entry[0] != name]
                licences.append((name, package, str(relative), licence_for(relative, stanzas)))
                kept += name not in {entry[0] for entry in licences[:-1]}
                print(f"  photo ({reason}): {relative} -> {name}")
            print(f"{package}: {kept} photos")
    lines = [
        "Background photographs extracted from Debian packages (downscaled, re-encoded as JPEG).",
        "Licence per file as named in the package's debian/copyright (see that file for the full text).",
        "",
        "file\tpackage\toriginal path\tlicence",
    ]
    lines += ["\t".join(entry) for entry in sorted(licences)]
    (args.out / "LICENSES.txt").write_text("\n".join(lines) + "\n")
    print(f"{len(licences)} photos in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
