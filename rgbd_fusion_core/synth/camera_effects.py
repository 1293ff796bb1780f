"""What a real camera does to a frame's colours, applied to a rendered RGB image only (depth and mask stay exact):
exposure, white balance, motion and defocus blur, gamma, sensor noise (shot + read) and JPEG at varied quality.

Every parameter comes from the given numpy ``Generator`` (so from the sample's seed) and is returned for the
sample's metadata; the JPEG round trip goes through OpenCV's libjpeg, which is deterministic.
"""

from __future__ import annotations

import cv2
import numpy as np


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size), np.float32)
    centre = (size - 1) / 2
    for s in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        x, y = int(round(centre + s * np.cos(angle))), int(round(centre + s * np.sin(angle)))
        kernel[y, x] += 1.0
    return kernel / kernel.sum()


def apply_camera_effects(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """(uint8 (H, W, 3) image, parameters) from a float RGB image (H, W, 3) in [0, ~1]."""
    image = np.asarray(rgb, np.float32)
    size = image.shape[0]
    params = {}
    exposure = float(2.0 ** rng.uniform(-0.8, 0.6))
    gains = np.exp(rng.normal(0.0, 0.08, size=3)).astype(np.float32)
    gains /= gains[1]
    image = image * (exposure * gains)
    params["exposure"] = round(exposure, 3)
    params["white_balance"] = gains.round(3).tolist()
    if rng.uniform() < 0.3:
        length = int(rng.integers(3, max(4, size // 28)))
        angle = float(rng.uniform(0, np.pi))
        image = cv2.filter2D(image, -1, _motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
        params["motion_blur_px"] = length
    if rng.uniform() < 0.3:
        sigma = float(rng.uniform(0.4, 1.6) * size / 256)
        image = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        params["defocus_sigma_px"] = round(sigma, 3)
    image = np.clip(image, 0.0, 1.0)
    gamma = float(rng.uniform(0.8, 1.25))
    image = image**gamma
    params["gamma"] = round(gamma, 3)
    shot, read = float(rng.uniform(0.0, 0.01)), float(rng.uniform(0.0, 0.02))
    noise = rng.standard_normal(image.shape).astype(np.float32)
    luma_noise = rng.standard_normal(image.shape[:2]).astype(np.float32)[:, :, None]
    sigma = np.sqrt(shot * image + read**2)
    image = image + sigma * (0.6 * noise + 0.8 * luma_noise)
    params["noise"] = {"shot": round(shot, 4), "read": round(read, 4)}
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.uniform() < 0.85:
        quality = int(rng.integers(25, 96))
        ok, encoded = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
        params["jpeg_quality"] = quality
    return out, params
