"""rgbd-fusion build-engine: TensorRT engines for every stage of an export folder, or of a model's cached export
(the folder the API's tensorrt backend uses), with the API's defaults (needs an NVIDIA GPU)."""

HELP = "build (or refresh) TensorRT engines from an export folder's ONNX files, or for a model's cached export"


def configure(parser):
    parser.add_argument(
        "folder",
        nargs="?",
        default=None,
        help="export folder written by `rgbd-fusion export`; none: the model's export in the per-user cache, where "
        "Pipeline.from_pretrained(backend='tensorrt') looks",
    )
    parser.add_argument("--model", default=None, help="model folder when no export folder is given (default: shipped)")
    # None: the engine settings' own default (EngineSettings), so the CLI and the API build the same engine
    parser.add_argument(
        "--fp16",
        action="store_true",
        default=None,
        help="allow fp16 kernels, the time embedding stays fp32 (default: fp16 on, as in the API)",
    )
    parser.add_argument("--fp32", dest="fp16", action="store_false", help="build an fp32-only engine")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even when the cached engine is current")
    parser.add_argument("--max-batch", type=int, default=None, help="largest batch the engines accept (default: 8)")
    parser.add_argument("--opt-batch", type=int, default=None, help="batch size the kernels are tuned for (default: 1)")
    parser.add_argument("--workspace-mb", type=int, default=None, help="builder workspace limit, MB (default: 1024)")
    parser.add_argument("--device", default="cuda", help="CUDA device, e.g. cuda:1")


def stage_onnx_paths(args) -> dict[str, object]:
    """{stage name: ONNX path}: the export folder's stages, or the model's cached export of both stages."""
    from rgbd_fusion_core.runtime.graph_contract import load_exported_stage, read_export_metadata

    if args.folder is not None:
        if args.model is not None:
            raise ValueError("give an export folder or --model, not both")
        names = sorted(read_export_metadata(args.folder)["stages"])
        return {name: load_exported_stage(args.folder, int(name.removeprefix("stage"))).onnx_path for name in names}
    from rgbd_fusion_core.inference.backends import stage_onnx
    from rgbd_fusion_core.models.checkpoint import load_stage_model
    from rgbd_fusion_core.models.model_files import resolve_model_dir

    paths = {}
    for stage, path in zip((1, 2), resolve_model_dir(args.model)):
        config, module = load_stage_model(path, expected_stage=stage)
        paths[f"stage{stage}"] = stage_onnx(config, module, path)
    return paths


def run(args) -> int:
    from rgbd_fusion_core.runtime.tensorrt_backend import EngineSettings, build_engine, import_tensorrt

    import_tensorrt()  # the clear "no GPU / not installed" error before any export work
    given = dict(fp16=args.fp16, max_batch=args.max_batch, opt_batch=args.opt_batch, workspace_mb=args.workspace_mb)
    settings = EngineSettings(**{name: value for name, value in given.items() if value is not None})
    for name, onnx_path in stage_onnx_paths(args).items():
        result = build_engine(onnx_path, settings, args.device, rebuild=args.rebuild)
        action = f"built in {result.seconds:.1f} s ({result.reason})" if result.built else "up to date, reused"
        print(f"{name}: {result.path}: {action}")
    return 0
