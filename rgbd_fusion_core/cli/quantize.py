"""``rgbd-fusion quantize``: an int8 ONNX export folder for ONNX Runtime on CPU, each stage chosen by quality."""

from __future__ import annotations

import argparse
import json

HELP = "static int8 quantization of the stage convolutions (calibrated and scored on different renders)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--calib", required=True, help="dataset of calibration renders (all splits are used)")
    parser.add_argument("--heldout", required=True, help="dataset of held-out renders scored for the choice")
    parser.add_argument("--out", required=True, help="export folder to write (use it with --onnx)")
    parser.add_argument("--max-iou-drop", type=float, default=0.01, help="largest IoU loss accepted per choice")
    parser.add_argument("--max-mae-rise", type=float, default=0.05, help="largest relative MAE rise accepted")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")


def run(args: argparse.Namespace) -> int:
    from rgbd_fusion_core.export.quantize import build_int8_folder

    entry = build_int8_folder(
        args.model, args.calib, args.heldout, args.out, args.max_iou_drop, args.max_mae_rise, args.threads
    )
    print(json.dumps(entry, indent=2))
    return 0
