"""rgbd-fusion evaluate: paper and metric scores of trained stages on a dataset split."""

HELP = "evaluate stage 1, stage 2 alone and end to end with the paper's and metric depth metrics"


def configure(parser):
    parser.add_argument("--stage1", required=True, help="stage-1 run folder or .safetensors model file")
    parser.add_argument(
        "--stage2", default=None, help="stage-2 run folder or .safetensors (adds stage-2 and end-to-end)"
    )
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--split", default="test", help="dataset split to evaluate on (subject-disjoint 'test')")
    parser.add_argument(
        "--sampler", default="dpmpp2m", choices=("ddpm", "ddim", "dpmpp2m"), help="sampler for both stages"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="sampling steps for both stages (default: each model's)"
    )
    parser.add_argument("--steps1", type=int, default=None, help="sampling steps for stage 1 (overrides --steps)")
    parser.add_argument("--steps2", type=int, default=None, help="sampling steps for stage 2 (overrides --steps)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first K samples of the split")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    parser.add_argument(
        "--vlb-samples",
        type=int,
        default=0,
        help="also compute the full variational bound (T network evaluations each) on this many samples",
    )
    parser.add_argument(
        "--cond-noise",
        type=float,
        default=0.0,
        help="Gaussian noise sigma (network units) added to the true 64x64 depth fed to stage 2 alone",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--json", required=True, help="write the report here (JSON)")
    parser.add_argument("--figure", default=None, help="also write a figure RGB | truth | prediction | error (PNG)")


def run(args) -> int:
    import json

    import torch

    from rgbd_fusion_core.evaluation.evaluate import evaluate
    from rgbd_fusion_core.io.atomic import write_text_atomic

    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate(
        args.stage1,
        args.stage2,
        args.data,
        split=args.split,
        sampler=args.sampler,
        steps1=args.steps1 or args.steps,
        steps2=args.steps2 or args.steps,
        limit=args.limit,
        batch_size=args.batch_size,
        seed=args.seed,
        vlb_samples=args.vlb_samples,
        cond_noise=args.cond_noise,
        figure=args.figure,
    )
    text = json.dumps(report, indent=2)
    write_text_atomic(args.json, text + "\n")
    print(text)
    return 0
