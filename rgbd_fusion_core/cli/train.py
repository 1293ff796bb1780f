"""rgbd-fusion train: train stage 1 or stage 2 on a dataset folder (single process or under torchrun)."""

HELP = "train stage 1 (64x64 depth from RGB) or stage 2 (256x256 super-resolution from RGB-D)"


def configure(parser):
    parser.add_argument("--stage", type=int, choices=(1, 2), required=True, help="which stage to train")
    parser.add_argument(
        "--config", default="small", help="preset name (tiny, small, paper) or a YAML file with stage1/stage2 sections"
    )
    parser.add_argument("--data", required=True, help="dataset folder (see README: dataset format)")
    parser.add_argument("--out", required=True, help="run folder for checkpoints, logs and model.safetensors")
    parser.add_argument("--steps", type=int, default=None, help="total optimisation steps (default: from the config)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    parser.add_argument(
        "--init-from",
        default=None,
        help="start a new run from this stage model's weights (a .safetensors file or run folder; fine-tuning, "
        "e.g. the shipped model's stage1.safetensors on your own data)",
    )
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=None, help="per-process batch size (overrides the config)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import dataclasses

    from rgbd_fusion_core.config import load_stage_config
    from rgbd_fusion_core.training.distributed import shutdown_distributed
    from rgbd_fusion_core.training.trainer import train

    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    config = load_stage_config(args.config, args.stage)
    if args.batch_size:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=args.batch_size))
    try:
        summary = train(
            config,
            args.data,
            args.out,
            steps=args.steps,
            resume=args.resume,
            device=args.device,
            threads=args.threads,
            progress=not args.no_progress,
            init_from=args.init_from,
        )
    finally:
        shutdown_distributed()
    print(f"trained {summary['steps']} steps in {summary['seconds']:.0f} s -> {summary['run_dir']}")
    return 0
