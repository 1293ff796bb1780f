"""rgbd-fusion pack-model: make a model folder (stage1/stage2 .safetensors + sha256 manifest) from two runs."""

HELP = "pack two trained stages into a model folder usable by predict, demo, the node and the bag tool"


def configure(parser):
    parser.add_argument("--stage1", required=True, help="stage-1 run folder or .safetensors")
    parser.add_argument("--stage2", required=True, help="stage-2 run folder or .safetensors")
    parser.add_argument("--out", required=True, help="model folder to write")


def run(args) -> int:
    from rgbd_fusion_core.models.model_files import write_model_folder

    manifest = write_model_folder(args.stage1, args.stage2, args.out)
    for name, digest in manifest["sha256"].items():
        print(f"{args.out}/{name}  sha256 {digest}")
    return 0
