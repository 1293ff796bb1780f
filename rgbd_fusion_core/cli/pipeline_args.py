"""Command-line flags for building a Pipeline, derived from the settings' declarations (shared by predict, demo
and the bag tool)."""

from __future__ import annotations

from rgbd_fusion_core.inference.pipeline_io import (
    MODEL_SOURCE_SETTINGS,
    PIPELINE_SETTINGS,
    ModelSource,
    PipelineConfig,
)
from rgbd_fusion_core.inference.settings import add_arguments, config_from_plain, plain_values


def add_pipeline_arguments(parser) -> None:
    add_arguments(parser, MODEL_SOURCE_SETTINGS, "model")
    add_arguments(parser, PIPELINE_SETTINGS, "inference")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def pipeline_config_from_args(args) -> PipelineConfig:
    return config_from_plain(PipelineConfig, plain_values(args, PIPELINE_SETTINGS), where="flag")


def pipeline_from_args(args, video: bool = False):
    """The Pipeline the flags ask for; ``video``: frames come in order (the person finder tracks)."""
    import torch

    from rgbd_fusion_core.inference.pipeline import Pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    source = config_from_plain(ModelSource, plain_values(args, MODEL_SOURCE_SETTINGS), where="flag")
    return Pipeline.from_pretrained(
        source.model or None,
        backend=source.backend,
        device=source.device,
        onnx=source.onnx or None,
        config=pipeline_config_from_args(args),
        video=video,
    )
