"""The ``rgbd-fusion`` command: one subcommand per module, imported only when it runs.

Each subcommand module defines ``HELP`` (one line), ``configure(parser)`` (adds its flags, each with help
text; imports nothing heavy) and ``run(args) -> int`` (does the work; heavy imports go inside). Other installed
packages add subcommands through the ``rgbd_fusion.commands`` entry-point group (the ROS package adds ``bag``),
so the core never names them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from rgbd_fusion_core.apps.threads import prefer_passive_omp_wait

SUBCOMMANDS = {
    "make-dataset": "rgbd_fusion_core.cli.make_dataset",
    "show-dataset": "rgbd_fusion_core.cli.show_dataset",
    "annotate": "rgbd_fusion_core.cli.annotate",
    "train": "rgbd_fusion_core.cli.train",
    "evaluate": "rgbd_fusion_core.cli.evaluate",
    "predict": "rgbd_fusion_core.cli.predict",
    "demo": "rgbd_fusion_core.cli.demo",
    "export": "rgbd_fusion_core.cli.export",
    "build-engine": "rgbd_fusion_core.cli.build_engine",
    "quantize": "rgbd_fusion_core.cli.quantize",
    "benchmark": "rgbd_fusion_core.cli.benchmark",
    "pack-model": "rgbd_fusion_core.cli.pack_model",
}
PLUGIN_GROUP = "rgbd_fusion.commands"


def subcommand_modules() -> dict[str, object]:
    """Subcommand name -> its module: the core's own, then those other packages register."""
    modules = {name: importlib.import_module(module_name) for name, module_name in SUBCOMMANDS.items()}
    for entry in entry_points(group=PLUGIN_GROUP):
        modules.setdefault(entry.name, entry.load())
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rgbd-fusion",
        description="Metric depth and point clouds of people from one RGB image (RGB-D-Fusion, arXiv 2307.15988).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in subcommand_modules().items():
        sub_parser = sub.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        module.configure(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    prefer_passive_omp_wait()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return run_command(f"rgbd-fusion {args.command}", args._run, args)


# Optional packages -> the extra of setup.py that installs them (for a one-line "install this" message).
EXTRA_OF_MODULE = {
    "anny": "synth",
    "moderngl": "synth",
    "warp": "synth",
    "trimesh": "synth",
    "roma": "synth",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "rosbags": "bag",
    "rclpy": "ros",
    "tensorrt": "tensorrt",
    "tensorboard": "train",
}


def run_command(name: str, run, args: argparse.Namespace) -> int:
    """``run(args)`` with the errors a user can cause reported in one line (exit 1), Ctrl-C as 130, and a missing
    optional package named with the extra that installs it."""
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as error:
        top = (error.name or "").split(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise
        extra = EXTRA_OF_MODULE[top]
        print(
            f"{name}: error: needs {top}, which is not installed: pip install 'rgbd-fusion[{extra}]'", file=sys.stderr
        )
        return 1
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
