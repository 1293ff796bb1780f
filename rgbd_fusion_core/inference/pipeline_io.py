"""What goes into and comes out of the inference ``Pipeline`` (shared by the CLI, the ROS node and the bag tool)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rgbd_fusion_core.diffusion.samplers import SAMPLERS
from rgbd_fusion_core.inference.settings import declared_settings, setting
from rgbd_fusion_core.people.pose_scale import SURFACE_OFFSET_M
from rgbd_fusion_core.runtime import BACKEND_CHOICES
from rgbd_fusion_core.runtime.device import DEVICE_HELP, check_device_name


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
    points: (N, 3) float32 camera-optical-frame points in metres (x right, y down, z forward), of every person
    found in the frame (this person's own plus those in ``others``).
    colors: (N, 3) uint8 RGB of those points.
    depth_full: optional (H, W) float32 metres aligned with the input image (NaN elsewhere).
    uncertainty: optional (256, 256) float32 metres, per-pixel standard deviation over the network's samples; NaN
    where any sample has no person, so also on pixels filled from the skeleton (``fill_mask``), whose depth is
    not the network's.
    z_ref: reference depth in metres used for the metric conversion; z_ref_source: "sensor", "pose",
    "height_prior", "fixed" or "none". nfe: network evaluations spent. timings_ms: per-step wall times.
    people_found: people in the frame (0: nobody; then depth is all NaN, points empty, z_ref NaN).
    person_source: where this person came from ("mask", "roi", "finder", "centre").
    others: the frame's further people (most prominent first), each a PipelineResult of its own crop whose
    points are its own only. The crop fields above are the most prominent person's; depth_full holds all.
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
    people_found: int = 1
    person_source: str = ""
    others: list[PipelineResult] = field(default_factory=list)


REFERENCE_DEPTH_STRATEGIES = ("auto", "sensor", "pose", "height_prior", "fixed")
PERSON_SOURCES = ("auto", "finder", "mask", "none")
CROP_MODES = ("auto", "mask", "roi", "center")
SAMPLER_NAMES = tuple(SAMPLERS)
MAX_SEED = 2**31 - 1  # ROS integer parameters are int64, seeds fit int32 everywhere


@dataclass(frozen=True)
class PipelineConfig:
    """Inference settings; each field's meaning, range and CLI/ROS form is declared once, below.

    Sampler spacing and eta come from the model's saved stage config; these settings choose name and steps.
    """

    sampler1: str = setting("dpmpp2m", "stage-1 (64x64 depth) sampler", choices=SAMPLER_NAMES)
    steps1: int = setting(3, "stage-1 sampling steps (network evaluations)", value_range=(1, 1000))
    sampler2: str = setting("dpmpp2m", "stage-2 (256x256 super-resolution) sampler", choices=SAMPLER_NAMES)
    steps2: int = setting(2, "stage-2 sampling steps (network evaluations)", value_range=(1, 1000))
    seed: int | None = setting(0, "sampling seed; -1 = nondeterministic", value_range=(-1, MAX_SEED), none_value=-1)
    reference_depth: str = setting(
        "auto",
        "source of the metric scale: auto (sensor depth if given, else the pose from the person finder, else the "
        "height prior), sensor, pose, height_prior, fixed",
        choices=REFERENCE_DEPTH_STRATEGIES,
    )
    fixed_distance_m: float = setting(
        2.5, "person distance (m) for reference_depth=fixed and when nothing else gives one", value_range=(0.1, 50.0)
    )
    person_height_m: float = setting(1.7, "person height (m) for the height prior", value_range=(0.5, 2.5))
    pose_surface_offset_m: float = setting(
        SURFACE_OFFSET_M,
        "how far the person's visible surface lies in front of their keypoints (m), for the pose's z_ref; measured "
        "on renders (benchmarks/pose_surface_offset.py measures it on an annotated RGB-D dataset of your own)",
        value_range=(0.0, 0.5),
    )
    person_source: str = setting(
        "auto",
        "where the people are: auto (the given mask or ROI, else the person finder), finder, mask (given only), "
        "none (no finder: the given mask or ROI, else one centred crop)",
        choices=PERSON_SOURCES,
    )
    max_people: int = setting(3, "most people processed per frame (most prominent first)", value_range=(1, 16))
    mask_margin_px: int = setting(
        4, "output pixels allowed outside the person mask, at the stage-2 resolution", value_range=(0, 64)
    )
    edge_step_m: float = setting(
        0.1,
        "flying-pixel filter: silhouette pixels more than this far behind the local mean are dropped (m); 0 = off",
        value_range=(0.0, 2.0),
    )
    fill_mask: bool = setting(
        True,
        "inside a person mask, pixels the network left empty are filled (the mask decides the silhouette): at the "
        "depth of the nearest point of the finder's skeleton, else of the person pixels next to them",
    )
    pose_depth_weight: float = setting(
        0.5,
        "share of the person's coarse depth taken from the finder's skeleton (its metric 3D keypoints) instead of "
        "the network (not with sensor depth); the fine detail stays the network's; 0 = off",
        value_range=(0.0, 1.0),
    )
    crop_mode: str = setting(
        "auto", "person crop: auto (mask, else roi, else centre), mask, roi, center", choices=CROP_MODES
    )
    crop_margin: float = setting(
        0.1, "fraction of the mask/ROI box size added on each side of the crop", value_range=(0.0, 1.0)
    )
    full_frame: bool = setting(False, "also paste the depth back into the input frame (depth/image_full)", live=False)
    uncertainty_samples: int = setting(
        0, "stage-2 samples whose per-pixel std is reported; 0 = off (1 is not allowed)", value_range=(0, 64)
    )
    threshold: float | None = setting(
        None, "foreground threshold in network space; -1 = the model's own", value_range=(-1.0, 1.0), none_value=-1.0
    )

    def __post_init__(self):
        for spec in declared_settings(PipelineConfig):
            value = getattr(self, spec.name)
            if value is not None:
                spec.check(value, where="PipelineConfig")
        if self.uncertainty_samples == 1:
            raise ValueError(f"uncertainty_samples must be 0 (off) or >= 2, got {self.uncertainty_samples}")


PIPELINE_SETTINGS = declared_settings(PipelineConfig)


@dataclass(frozen=True)
class ModelSource:
    """Which model the Pipeline loads, and where it runs (changing any of these reloads the model)."""

    model: str = setting("", "model folder with stage1/stage2 weights; empty = the shipped default model", live=False)
    backend: str = setting(
        "auto",
        "inference backend (auto: ONNX Runtime on the CPU when installed, else torch)",
        choices=BACKEND_CHOICES,
        live=False,
    )
    device: str = setting("auto", DEVICE_HELP, live=False, validator=check_device_name)
    onnx: str = setting(
        "",
        "export folder (rgbd-fusion export, or quantize for int8) the ONNX-based backends run instead of exporting "
        "the model's weights; int8 = the shipped model's int8 export; empty = export on demand",
        live=False,
    )

    def __post_init__(self):
        for spec in declared_settings(ModelSource):
            spec.check(getattr(self, spec.name), where="ModelSource")


MODEL_SOURCE_SETTINGS = declared_settings(ModelSource)
