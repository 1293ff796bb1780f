"""Frozen configuration dataclasses, one per component, with YAML presets.

Every checkpoint stores the ``StageConfig`` it was trained with, so a checkpoint rebuilds its own model.
Presets live in ``rgbd_fusion_core/presets/*.yaml``; ``load_stage_config`` accepts a preset name or a path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rgbd_fusion_core.geometry.depth_space import DepthSpace

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class ModelConfig:
    """A denoiser: ``denoiser(x_t, t, cond) -> prediction``; conditioning is channel concatenation."""

    architecture: str = "unet3plus"  # "unet3plus" or "unet"
    in_channels: int = 1  # channels of x_t (depth)
    cond_channels: int = 3  # channels of the condition (RGB, or RGB-D for stage 2)
    out_channels: int = 1  # 2 with learned-range variance
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2, 3)  # level indices (0 = full resolution) with linear attention
    bottleneck_attention: bool = True  # full self-attention at the bottleneck
    groups: int = 8
    dropout: float = 0.1
    space_to_depth: int = 1  # pixel-unshuffle factor at the input (and shuffle at the output)
    unet3plus_channels: int = 0  # per-source channels in UNet3+ aggregation (0 = base_channels)


@dataclass(frozen=True)
class DiffusionConfig:
    schedule: str = "cosine"  # "cosine" (s=0.008) or "linear"
    timesteps: int = 1000
    prediction: str = "eps"  # "eps", "x0" or "v"
    learned_variance: bool = False  # learned-range variance (out_channels 2) with the hybrid loss
    hybrid_lambda: float = 0.001
    p2_gamma: float = 0.0  # P2 weighting exponent (0 = off)
    p2_k: float = 1.0


@dataclass(frozen=True)
class SamplerConfig:
    name: str = "dpmpp2m"  # "ddpm", "ddim", "dpmpp2m"
    steps: int = 10
    eta: float = 0.0  # DDIM only
    spacing: str = "trailing"  # "leading", "trailing" or "linspace"


@dataclass(frozen=True)
class AugmentConfig:
    """Depth-noise augmentation of the stage-2 depth condition (paper: sigma_d ~ U[0, 0.06], p = 0.5), and for a
    pose-conditioned stage 1 the share of samples trained without keypoints (as when a user's mask comes alone)."""

    enabled: bool = True
    sigma_min: float = 0.0
    sigma_max: float = 0.06
    probability: float = 0.5
    keypoint_dropout: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100_000
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    mixed_precision: str = "auto"  # "auto", "off", "bf16", "fp16"
    crop_size: int = 0  # stage 2: train on random crops of this size (0 = full resolution)
    checkpoint_every: int = 1000
    log_every: int = 50
    num_workers: int = 2
    seed: int = 0


@dataclass(frozen=True)
class StageConfig:
    """Everything that defines one stage; stored whole in every checkpoint."""

    stage: int = 1  # 1: 64x64 depth from RGB; 2: 256x256 depth from RGB-D
    resolution: int = 64
    # stage 1's condition: "rgb" (the paper) or "rgb_pose" (RGB + the person finder's mask and a rasterised
    # skeleton carrying the keypoints' relative depth: see geometry/pose_channels.py)
    conditioning: str = "rgb"
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    depth_space: DepthSpace = field(default_factory=DepthSpace)


def to_dict(config) -> dict:
    """A plain, YAML/JSON-safe dict (tuples become lists)."""
    return dataclasses.asdict(config)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        sub = _NESTED.get((cls, name))
        if sub is not None:
            kwargs[name] = _build(sub, value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_NESTED = {
    (StageConfig, "model"): ModelConfig,
    (StageConfig, "diffusion"): DiffusionConfig,
    (StageConfig, "sampler"): SamplerConfig,
    (StageConfig, "augment"): AugmentConfig,
    (StageConfig, "train"): TrainConfig,
    (StageConfig, "depth_space"): DepthSpace,
}


CONDITIONINGS = {"rgb": 3, "rgb_pose": 6}  # stage-1 condition kind -> its channels


def stage_config_from_dict(values: dict, where: str = "config") -> StageConfig:
    return check_conditioning(_build(StageConfig, values, where), where)


def check_conditioning(config: StageConfig, where: str = "config") -> StageConfig:
    """The model's condition channels must match what the stage is fed; a ValueError naming both otherwise."""
    if config.conditioning not in CONDITIONINGS:
        raise ValueError(f"{where}.conditioning must be one of {sorted(CONDITIONINGS)}, got {config.conditioning!r}")
    if config.stage == 2 and config.conditioning != "rgb":
        raise ValueError(f"{where}.conditioning: stage 2 is conditioned on RGB-D only, got {config.conditioning!r}")
    expected = CONDITIONINGS[config.conditioning] if config.stage == 1 else 4
    if config.model.cond_channels != expected:
        raise ValueError(
            f"{where}.model.cond_channels is {config.model.cond_channels}, but stage {config.stage} with "
            f"conditioning {config.conditioning!r} is fed {expected} channels"
        )
    return config


POSITIVE_TRAIN_FIELDS = ("steps", "batch_size", "checkpoint_every", "log_every")
NON_NEGATIVE_TRAIN_FIELDS = ("warmup_steps", "crop_size", "num_workers", "grad_clip", "weight_decay")


def check_train_config(train: TrainConfig, where: str = "train") -> TrainConfig:
    """Refuse training settings that would train nothing or crash later: a ``ValueError`` naming the field."""
    for name in POSITIVE_TRAIN_FIELDS + NON_NEGATIVE_TRAIN_FIELDS:
        value = getattr(train, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{name} must be a number, got {value!r}")
        if name in POSITIVE_TRAIN_FIELDS and value < 1:
            raise ValueError(f"{where}.{name} must be >= 1, got {value}")
        if value < 0:
            raise ValueError(f"{where}.{name} must be >= 0, got {value}")
    if isinstance(train.lr, bool) or not isinstance(train.lr, int | float) or not train.lr > 0:
        raise ValueError(f"{where}.lr must be a positive number, got {train.lr!r}")
    return train


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_stage_config(preset_or_path: str, stage: int) -> StageConfig:
    """A preset name (``small``, ``paper``, ``tiny``) or a YAML path; a preset file holds ``stage1``/``stage2``."""
    path = Path(preset_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{preset_or_path}.yaml"
        if not path.exists():
            raise ValueError(f"unknown preset {preset_or_path!r}; available: {available_presets()}")
    elif not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())  # one line: the parser's message with its line and column
        raise ValueError(f"{path}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a text (YAML) file ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping (stage1:/stage2: sections or one stage's keys)")
    key = f"stage{stage}"
    if key in data:
        data = data[key]
    try:
        config = stage_config_from_dict(data, f"{path}: {key}")
    except TypeError as error:  # a value of the wrong kind reaching a dataclass
        raise ValueError(f"{path}: {key}: {error}") from None
    check_train_config(config.train, f"{path}: {key}.train")
    if config.stage != stage:
        raise ValueError(f"{path}: config is for stage {config.stage}, but stage {stage} was requested")
    return config
