"""``rgbd-fusion show-dataset``: a contact sheet of RGB and colour-mapped depth tiles of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a grid image of dataset samples (RGB next to colour-mapped depth)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder (holding dataset.json)")
    parser.add_argument("--out", type=Path, required=True, help="output PNG")
    parser.add_argument("--split", default="all", help="train, test or all")
    parser.add_argument("--count", type=int, default=16, help="number of samples shown (evenly spread)")
    parser.add_argument("--resolution", type=int, default=256, help="which resolution to show (e.g. 256 or 64)")
    parser.add_argument("--tile", type=int, default=192, help="tile side in pixels (nearest-neighbour scaled)")


def _label(tile, text: str):
    import cv2

    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from rgbd_fusion_core.data.format import read_index
    from rgbd_fusion_core.io.imageio import colorize_depth, read_depth_m, read_rgb, write_rgb

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    index = read_index(args.root)
    samples = index.split_samples(args.split)
    if args.resolution not in index.resolutions:
        raise ValueError(f"{args.root} has resolutions {list(index.resolutions)}, not {args.resolution}")
    chosen = [
        samples[i]
        for i in np.unique(np.linspace(0, len(samples) - 1, min(args.count, len(samples))).round().astype(int))
    ]
    tiles = []
    for sample in chosen:
        files = sample.files[args.resolution]
        rgb = read_rgb(index.root / files["rgb"])
        depth = read_depth_m(index.root / files["depth"], index.depth_unit)
        size = (args.tile, args.tile)
        rgb_tile = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST)
        depth_tile = cv2.resize(colorize_depth(depth), size, interpolation=cv2.INTER_NEAREST)
        valid = depth[depth > 0]
        z_text = f"{np.median(valid):.2f} m" if valid.size else "no depth"
        tiles.append(np.concatenate([_label(rgb_tile, sample.id), _label(depth_tile, z_text)], axis=1))
    columns = int(np.ceil(np.sqrt(len(tiles) / 2)))
    rows = int(np.ceil(len(tiles) / columns))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (rows * columns - len(tiles))
    grid = np.concatenate([np.concatenate(tiles[r * columns : (r + 1) * columns], axis=1) for r in range(rows)], axis=0)
    write_rgb(args.out, grid)
    print(f"wrote {len(chosen)} samples ({args.split}, {args.resolution} px) to {args.out}")
    return 0
