"""Command-line flags for building a Pipeline, shared by predict, demo and the bag tool."""

from __future__ import annotations

from rgbd_fusion_core.pipeline_io import CROP_MODES, REFERENCE_DEPTH_STRATEGIES, PipelineConfig

SAMPLERS = ("ddpm", "ddim", "dpmpp2m")


def add_pipeline_arguments(parser) -> None:
    defaults = PipelineConfig()
    group = parser.add_argument_group("model and inference")
    group.add_argument(
        "--model", default=None, help="model folder with stage1/stage2 .safetensors (default: shipped model)"
    )
    group.add_argument(
        "--backend", default="torch", choices=("torch", "onnxruntime", "tensorrt"), help="inference backend"
    )
    group.add_argument("--device", default="auto", help="'auto' (CUDA if present, else CPU), 'cpu', 'cuda'")
    group.add_argument("--sampler1", default=defaults.sampler1, choices=SAMPLERS, help="stage-1 sampler")
    group.add_argument("--steps1", type=int, default=defaults.steps1, help="stage-1 sampling steps (network evals)")
    group.add_argument("--sampler2", default=defaults.sampler2, choices=SAMPLERS, help="stage-2 sampler")
    group.add_argument("--steps2", type=int, default=defaults.steps2, help="stage-2 sampling steps (network evals)")
    group.add_argument("--seed", type=int, default=defaults.seed, help="sampling seed (negative: nondeterministic)")
    group.add_argument(
        "--reference-depth",
        default=defaults.reference_depth,
        choices=REFERENCE_DEPTH_STRATEGIES,
        help="how metric scale is found: sensor depth, human-height prior, or a fixed distance",
    )
    group.add_argument(
        "--distance",
        type=float,
        default=defaults.fixed_distance_m,
        help="person distance in metres for --reference-depth fixed (and fallback)",
    )
    group.add_argument(
        "--person-height",
        type=float,
        default=defaults.person_height_m,
        help="assumed person height in metres for the height prior",
    )
    group.add_argument(
        "--crop-mode",
        default=defaults.crop_mode,
        choices=CROP_MODES,
        help="person crop: from the mask, an ROI, or the centred square",
    )
    group.add_argument(
        "--crop-margin",
        type=float,
        default=defaults.crop_margin,
        help="margin added around the mask/ROI box, as a fraction of its size",
    )
    group.add_argument(
        "--uncertainty-samples",
        type=int,
        default=0,
        help="stage-2 samples for a per-pixel standard deviation (0 = off, else >= 2)",
    )
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def pipeline_config_from_args(args, **overrides) -> PipelineConfig:
    values = dict(
        sampler1=args.sampler1,
        sampler2=args.sampler2,
        steps1=args.steps1,
        steps2=args.steps2,
        seed=None if args.seed is not None and args.seed < 0 else args.seed,
        reference_depth=args.reference_depth,
        fixed_distance_m=args.distance,
        person_height_m=args.person_height,
        crop_mode=args.crop_mode,
        crop_margin=args.crop_margin,
        uncertainty_samples=args.uncertainty_samples,
    )
    values.update(overrides)
    return PipelineConfig(**values)


def pipeline_from_args(args, **overrides):
    import torch

    from rgbd_fusion_core.pipeline import Pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    return Pipeline.from_pretrained(
        args.model, backend=args.backend, device=args.device, config=pipeline_config_from_args(args, **overrides)
    )
