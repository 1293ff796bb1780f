"""``rgbd-fusion annotate``: run the person finder on every sample of a dataset and store what it saw."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "run the person finder on a dataset's samples (format version 2 annotations; resumable)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder (holding dataset.json); version 1 or 2")
    parser.add_argument("--save-every", type=int, default=200, help="rewrite dataset.json after this many samples")


def run(args: argparse.Namespace) -> int:
    from rgbd_fusion_core.apps.annotate import annotate_dataset

    if args.save_every < 1:
        raise ValueError(f"--save-every must be at least 1, got {args.save_every}")
    print(json.dumps(annotate_dataset(args.root, args.save_every)))
    return 0
