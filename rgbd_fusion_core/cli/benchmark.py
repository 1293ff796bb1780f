"""rgbd-fusion benchmark: per-stage and per-frame cost as shares of an interleaved matmul peak, as JSON.

The report's keys are listed in ``rgbd_fusion_core.apps.benchmark``'s docstring.
"""

HELP = (
    "measure per-stage and per-frame cost (1 and 3 people, 640x480, person finder included) as shares of a "
    "matmul peak measured between the workloads; min and median over rounds"
)


def configure(parser):
    parser.add_argument("--json", default=None, help="also write the report to this file")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument(
        "--backends",
        default="onnxruntime,torch",
        help="comma-separated backends: torch, onnxruntime, onnxruntime-int8 (the int8 stages of export.quantize)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds (min and median reported)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and ONNX Runtime")
    parser.add_argument(
        "--finder",
        default="mediapipe",
        choices=("mediapipe", "masks"),
        help="mediapipe: the node's person finder (tracking); masks: the pasted masks, no finder cost",
    )
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square fp32 matmul of the peak")
    parser.add_argument("--steps1", type=int, default=None, help="stage-1 steps (default: the node's)")
    parser.add_argument("--steps2", type=int, default=None, help="stage-2 steps (default: the node's)")
    parser.add_argument("--int8-folder", default=None, help="int8 export folder (default: the per-user cache)")


def run(args) -> int:
    import dataclasses
    import json

    import torch

    from rgbd_fusion_core.apps.benchmark import benchmark
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig
    from rgbd_fusion_core.io.atomic import write_text_atomic

    if args.threads:
        torch.set_num_threads(args.threads)
    config = PipelineConfig()
    steps = {k: v for k, v in (("steps1", args.steps1), ("steps2", args.steps2)) if v}
    config = dataclasses.replace(config, **steps)
    report = benchmark(
        args.model,
        backends=tuple(args.backends.split(",")),
        repeats=args.repeats,
        config=config,
        finder=args.finder,
        threads=args.threads,
        peak_size=args.peak_size,
        int8_folder=args.int8_folder,
    )
    text = json.dumps(report, indent=2)
    if args.json:
        write_text_atomic(args.json, text + "\n")
    print(text)
    return 0
