"""What goes into and comes out of the inference ``Pipeline`` (shared by the CLI, the ROS node and the bag tool)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One camera frame.

    rgb: (H, W, 3) uint8, RGB order. K: (3, 3) pinhole intrinsics of that image (pixels).
    mask: optional (H, W) person mask (nonzero = person). roi: optional (x, y, w, h) box in pixels.
    sensor_depth: optional (H, W) depth, float metres (NaN or 0 = none) or uint16 millimetres; when given,
    stage 1 is skipped and the sensor depth conditions stage 2.
    """

    rgb: np.ndarray
    K: np.ndarray
    mask: np.ndarray | None = None
    roi: tuple[int, int, int, int] | None = None
    sensor_depth: np.ndarray | None = None


@dataclass
class PipelineResult:
    """Everything the pipeline computes for one frame.

    depth: (256, 256) float32 metres along the optical axis, NaN where no person, in crop space.
    K_crop: (3, 3) intrinsics of that 256x256 crop (crop offset and resize folded in).
    crop_box: (x0, y0, size) square crop in input pixels (may extend past the image; padded).
    rgb_crop: (256, 256, 3) uint8, the colours of the crop.
    depth_low_res: (64, 64) float32 metres (stage-1 output or resized sensor depth), NaN background.
    K_low_res: (3, 3) intrinsics of the 64x64 crop.
    points: (N, 3) float32 camera-optical-frame points in metres (x right, y down, z forward).
    colors: (N, 3) uint8 RGB of those points.
    depth_full: optional (H, W) float32 metres aligned with the input image (NaN elsewhere).
    uncertainty: optional (256, 256) float32 metres, per-pixel standard deviation over samples.
    z_ref: reference depth in metres used for the metric conversion; z_ref_source: "sensor",
    "height_prior" or "fixed". nfe: network evaluations spent. timings_ms: per-step wall times.
    """

    depth: np.ndarray
    K_crop: np.ndarray
    crop_box: tuple[int, int, int]
    rgb_crop: np.ndarray
    depth_low_res: np.ndarray
    K_low_res: np.ndarray
    points: np.ndarray
    colors: np.ndarray
    z_ref: float
    z_ref_source: str
    nfe: int
    depth_full: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


REFERENCE_DEPTH_STRATEGIES = ("auto", "sensor", "height_prior", "fixed")
CROP_MODES = ("auto", "mask", "roi", "center")


@dataclass(frozen=True)
class PipelineConfig:
    """Inference settings.

    sampler/steps per stage (samplers: "ddpm", "ddim", "dpmpp2m"); seed: None = nondeterministic.
    reference_depth: "auto" (sensor if given, else height prior), "sensor", "height_prior" or "fixed";
    fixed_distance_m for "fixed"; person_height_m for the height prior.
    crop_mode: "auto" (mask, else roi, else centre), "mask", "roi", "center"; crop_margin: fraction of the
    box size added on each side. full_frame: also paste depth back into the input frame.
    uncertainty_samples: 0 = off, else number of stage-2 samples whose std is reported.
    threshold: foreground threshold in network space (None = the model's own).
    """

    sampler1: str = "dpmpp2m"
    steps1: int = 3
    sampler2: str = "dpmpp2m"
    steps2: int = 2
    seed: int | None = 0
    reference_depth: str = "auto"
    fixed_distance_m: float = 2.5
    person_height_m: float = 1.7
    crop_mode: str = "auto"
    crop_margin: float = 0.1
    full_frame: bool = False
    uncertainty_samples: int = 0
    threshold: float | None = None

    def __post_init__(self):
        if self.reference_depth not in REFERENCE_DEPTH_STRATEGIES:
            raise ValueError(
                f"reference_depth must be one of {REFERENCE_DEPTH_STRATEGIES}, got {self.reference_depth!r}"
            )
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {self.crop_mode!r}")
        if self.steps1 < 1 or self.steps2 < 1:
            raise ValueError(f"steps must be >= 1, got steps1={self.steps1}, steps2={self.steps2}")
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ValueError(f"crop_margin must be in [0, 1], got {self.crop_margin}")
        if self.fixed_distance_m <= 0 or self.person_height_m <= 0:
            raise ValueError("fixed_distance_m and person_height_m must be positive")
        if self.uncertainty_samples < 0 or self.uncertainty_samples == 1:
            raise ValueError(f"uncertainty_samples must be 0 (off) or >= 2, got {self.uncertainty_samples}")
