"""Backgrounds composited behind rendered people: none (black), solid, gradient, noise, or photos from a folder.

Every background is a (H, W, 3) float32 RGB image in [0, 1], drawn from a numpy ``Generator`` so a sample's
background is reproducible from its seed.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

from rgbd_fusion_core.io.imageio import read_rgb

KINDS = ("none", "solid", "gradient", "noise", "mixed")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_background_images(folder) -> list[Path]:
    """Image files (sorted) directly inside ``folder``; errors if the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"background folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"background folder holds no images ({', '.join(IMAGE_SUFFIXES)}): {folder}")
    return images


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.8), rng.uniform(0.1, 0.95)), np.float32)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
    t = np.clip(cols * np.cos(angle) + rows * np.sin(angle) + 0.5, 0, 1)[:, :, None]
    return ((1 - t) * _random_colour(rng) + t * _random_colour(rng)).astype(np.float32)


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise: a few octaves of random grids upsampled bicubically."""
    image = np.zeros((size, size, 3), np.float32)
    amplitude, total = 1.0, 0.0
    for cells in (2, 4, 8, 32):
        grid = rng.uniform(0, 1, size=(cells + 1, cells + 1, 3)).astype(np.float32)
        image += amplitude * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= 0.5
    image /= total
    tint = _random_colour(rng)
    return np.clip(0.5 * image + 0.5 * tint * image.mean(axis=2, keepdims=True) * 2, 0, 1)


_PHOTO_CACHE: dict = {}
PHOTO_MAX_SIDE = 1024


def _load_photo(path: Path) -> np.ndarray:
    """A photo as uint8 RGB, downscaled (area) to at most ``PHOTO_MAX_SIDE``; cached per process (up to 128)."""
    key = str(path)
    if key not in _PHOTO_CACHE:
        image = read_rgb(path)
        scale = PHOTO_MAX_SIDE / max(image.shape[:2])
        if scale < 1:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if len(_PHOTO_CACHE) >= 128:
            _PHOTO_CACHE.pop(next(iter(_PHOTO_CACHE)))
        _PHOTO_CACHE[key] = image
    return _PHOTO_CACHE[key]


def _photo(rng: np.random.Generator, size: int, images: list[Path], jitter: bool = False) -> np.ndarray:
    """A random square crop (30-100 % of the shorter side; 8-100 % with ``jitter``) of a random image, resized to
    ``size``; with ``jitter`` also a random horizontal flip and brightness/contrast/saturation/hue jitter."""
    image = _load_photo(images[int(rng.integers(len(images)))])
    height, width = image.shape[:2]
    if jitter:  # multi-scale: log-uniform crop side, from close-ups to the whole photo
        side = int(min(height, width) * np.exp(rng.uniform(np.log(0.08), 0.0)))
    else:
        side = int(min(height, width) * rng.uniform(0.3, 1.0))
    side = max(side, 1)
    y0 = int(rng.integers(0, height - side + 1))
    x0 = int(rng.integers(0, width - side + 1))
    crop = image[y0 : y0 + side, x0 : x0 + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = cv2.resize(crop, (size, size), interpolation=interpolation).astype(np.float32) / 255.0
    if not jitter:
        return out
    if rng.uniform() < 0.5:
        out = out[:, ::-1]
    brightness, contrast, saturation = rng.uniform(0.6, 1.4), rng.uniform(0.7, 1.3), rng.uniform(0.5, 1.4)
    hue = rng.uniform(-12.0, 12.0)  # degrees
    hsv = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0] + hue) % 360.0
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * saturation, 0, 1)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    mean = out.mean()
    return np.clip((out - mean) * contrast + mean * brightness, 0, 1).astype(np.float32)


def sample_background(
    rng: np.random.Generator,
    kind: str,
    size: int,
    images: list[Path] | None = None,
    photo_share: float | None = None,
    jitter: bool = False,
) -> tuple[str, np.ndarray]:
    """(chosen kind, (size, size, 3) float32 RGB in [0, 1]). ``mixed`` picks uniformly among solid, gradient,
    noise and (when ``images`` is given) photos, or, with ``photo_share``, photos with that probability and the
    synthetic kinds otherwise; ``none`` is black. With ``images`` and a non-mixed kind, photos replace that kind.
    ``jitter``: multi-scale crops, flips and colour jitter of the photos."""
    if kind not in KINDS:
        raise ValueError(f"unknown background kind {kind!r}; choose one of {KINDS}")
    if kind == "mixed" and images and photo_share is not None:
        kind = "photo" if rng.uniform() < photo_share else ("solid", "gradient", "noise")[int(rng.integers(3))]
    elif kind == "mixed":
        choices = ["solid", "gradient", "noise"] + (["photo"] if images else [])
        kind = choices[int(rng.integers(len(choices)))]
    elif images:
        kind = "photo"
    if kind == "photo":
        return kind, _photo(rng, size, images, jitter)
    if kind == "none":
        return kind, np.zeros((size, size, 3), np.float32)
    if kind == "solid":
        return kind, np.broadcast_to(_random_colour(rng), (size, size, 3)).copy()
    if kind == "gradient":
        return kind, _gradient(rng, size)
    if kind == "noise":
        return kind, _noise(rng, size)
    return kind, _photo(rng, size, images, jitter)
