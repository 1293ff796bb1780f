"""The ``rgbd-fusion`` command: one subcommand per module, imported only when it runs.

Each subcommand module defines ``HELP`` (one line), ``configure(parser)`` (adds its flags, each with help
text; imports nothing heavy) and ``run(args) -> int`` (does the work; heavy imports go inside).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rgbd_fusion_core.threads import prefer_passive_omp_wait

SUBCOMMANDS = {
    "make-dataset": "rgbd_fusion_core.cli.make_dataset",
    "show-dataset": "rgbd_fusion_core.cli.show_dataset",
    "train": "rgbd_fusion_core.cli.train",
    "evaluate": "rgbd_fusion_core.cli.evaluate",
    "predict": "rgbd_fusion_core.cli.predict",
    "demo": "rgbd_fusion_core.cli.demo",
    "export": "rgbd_fusion_core.cli.export",
    "build-engine": "rgbd_fusion_core.cli.build_engine",
    "benchmark": "rgbd_fusion_core.cli.benchmark",
    "pack-model": "rgbd_fusion_core.cli.pack_model",
    # The bag tool lives with the ROS package but needs no ROS installation (rosbags only).
    "bag": "rgbd_fusion_ros.bag_tool",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rgbd-fusion",
        description="Metric depth and point clouds of people from one RGB image (RGB-D-Fusion, arXiv 2307.15988).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
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
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"rgbd-fusion {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
