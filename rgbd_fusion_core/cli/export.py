"""rgbd-fusion export: per-stage denoiser ONNX (dynamic batch) plus export.json, checked against torch."""

HELP = "export the stage denoisers to ONNX (dynamic batch, verified in ONNX Runtime against torch)"


def configure(parser):
    source = parser.add_argument_group("model (a model folder, or one or both stages)")
    source.add_argument("--model", default=None, help="model folder with stage1.safetensors and stage2.safetensors")
    source.add_argument("--stage1", default=None, help="stage-1 model: a .safetensors file or a training run folder")
    source.add_argument("--stage2", default=None, help="stage-2 model: a .safetensors file or a training run folder")
    parser.add_argument("--out", required=True, help="export folder (stage*.onnx and export.json are written here)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (TensorRT >= 8.6 and ONNX Runtime parse 17)")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs torch parity check")


def stage_sources(args) -> dict[int, str]:
    """{stage: model path} from --model or --stage1/--stage2."""
    from pathlib import Path

    from rgbd_fusion_core.models.model_files import resolve_model_dir

    if args.model and (args.stage1 or args.stage2):
        raise ValueError("give either --model or --stage1/--stage2, not both")
    if args.model:
        return {stage: str(path) for stage, path in zip((1, 2), resolve_model_dir(Path(args.model)))}
    sources = {stage: path for stage, path in ((1, args.stage1), (2, args.stage2)) if path}
    if not sources:
        raise ValueError("nothing to export: give --model DIR or --stage1 / --stage2")
    return sources


def run(args) -> int:
    import time

    from rgbd_fusion_core.export.onnx_export import export_stages
    from rgbd_fusion_core.models.checkpoint import load_stage_model
    from rgbd_fusion_core.runtime.graph_contract import read_export_metadata

    stages = {}
    for stage, path in stage_sources(args).items():
        config, module = load_stage_model(path, expected_stage=stage)
        stages[stage] = (config, module, path)
    start = time.perf_counter()
    metadata_path = export_stages(stages, args.out, opset=args.opset, verify=not args.no_verify)
    metadata = read_export_metadata(metadata_path.parent)
    for name, entry in metadata["stages"].items():
        parity = entry.get("parity_max_abs_error")
        checked = f"max |ORT - torch| = {parity:.2e}" if parity is not None else "not verified"
        print(f"{name}: {metadata_path.parent / entry['onnx']} ({checked})")
    print(f"wrote {metadata_path} (opset {metadata['opset']}) in {time.perf_counter() - start:.1f} s")
    return 0
