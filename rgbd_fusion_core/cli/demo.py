"""rgbd-fusion demo: the default model on bundled rendered people with ground truth; writes depth, point clouds
and figures, and prints metrics and timings."""

from rgbd_fusion_core.cli.pipeline_args import add_pipeline_arguments

HELP = "run the model on bundled frames with ground truth (or --synthetic fresh renders); print metrics and timings"


def configure(parser):
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="render N fresh people with the generator instead (needs the 'synth' extra)",
    )
    parser.add_argument(
        "--data", default=None, help="use this dataset folder's test split instead of the bundled frames"
    )
    parser.add_argument("--limit", type=int, default=None, help="use at most this many frames")
    add_pipeline_arguments(parser)


def run(args) -> int:
    import json
    import tempfile
    from pathlib import Path

    from rgbd_fusion_core.apps.demo_run import BUNDLED_FRAMES, run_demo
    from rgbd_fusion_core.cli.pipeline_args import pipeline_from_args
    from rgbd_fusion_core.io.atomic import write_text_atomic

    pipeline = pipeline_from_args(args)
    with tempfile.TemporaryDirectory() as scratch:
        if args.synthetic:
            from rgbd_fusion_core.synth.generate import GeneratorConfig, generate

            data, split = Path(scratch) / "synthetic", "all"
            seed = args.seed if args.seed is not None and args.seed >= 0 else 0
            generate(
                GeneratorConfig(out=data, subjects=args.synthetic, views_per_subject=1, seed=1000 + seed, workers=1)
            )
        else:
            data, split = (Path(args.data), "test") if args.data else (BUNDLED_FRAMES, "all")
        report = run_demo(pipeline, data, split, Path(args.out), limit=args.limit)
    write_text_atomic(Path(args.out) / "metrics.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    print(f"outputs in {args.out}/ (per frame: depth.png, depth.npy, points.ply, figure.png; metrics.json)")
    return 0
