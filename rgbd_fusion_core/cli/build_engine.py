"""rgbd-fusion build-engine: TensorRT engines for every stage of an export folder (needs an NVIDIA GPU)."""

HELP = "build (or refresh) TensorRT engines from an export folder's ONNX files"


def configure(parser):
    parser.add_argument("folder", help="export folder written by `rgbd-fusion export`")
    parser.add_argument("--fp16", action="store_true", help="allow fp16 kernels (the time embedding stays fp32)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even when the cached engine is current")
    parser.add_argument("--max-batch", type=int, default=8, help="largest batch the engines accept")
    parser.add_argument("--opt-batch", type=int, default=1, help="batch size the kernels are tuned for")
    parser.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace limit (MB)")
    parser.add_argument("--device", default="cuda", help="CUDA device, e.g. cuda:1")


def run(args) -> int:
    from rgbd_fusion_core.runtime.graph_contract import load_exported_stage, read_export_metadata
    from rgbd_fusion_core.runtime.tensorrt_backend import EngineSettings, build_engine

    settings = EngineSettings(
        fp16=args.fp16, max_batch=args.max_batch, opt_batch=args.opt_batch, workspace_mb=args.workspace_mb
    )
    for name in sorted(read_export_metadata(args.folder)["stages"]):
        exported = load_exported_stage(args.folder, int(name.removeprefix("stage")))
        result = build_engine(exported.onnx_path, settings, args.device, rebuild=args.rebuild)
        action = f"built in {result.seconds:.1f} s ({result.reason})" if result.built else "up to date, reused"
        print(f"{name}: {result.path}: {action}")
    return 0
