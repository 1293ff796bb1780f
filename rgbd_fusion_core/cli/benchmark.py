"""rgbd-fusion benchmark: per-stage and end-to-end cost of the default (or given) model, as JSON."""

HELP = "measure per-stage ms, NFE, GFLOP, frames/s, share of the matmul peak and ONNX Runtime vs torch"


def configure(parser):
    parser.add_argument("--json", default=None, help="also write the report to this file")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--backends", default="torch,onnxruntime", help="comma-separated backends to time end to end")
    parser.add_argument("--frames", type=int, default=4, help="bundled frames per timing round")
    parser.add_argument("--repeats", type=int, default=10, help="timing repeats (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def run(args) -> int:
    import json

    import torch

    from rgbd_fusion_core.apps.benchmark import benchmark, bundled_frames
    from rgbd_fusion_core.io.atomic import write_text_atomic

    if args.threads:
        torch.set_num_threads(args.threads)
    report = benchmark(args.model, bundled_frames(args.frames), tuple(args.backends.split(",")), args.repeats)
    text = json.dumps(report, indent=2)
    if args.json:
        write_text_atomic(args.json, text + "\n")
    print(text)
    return 0
