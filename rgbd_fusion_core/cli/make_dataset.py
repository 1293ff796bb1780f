"""``rgbd-fusion make-dataset``: render a synthetic RGB-D dataset of people (anny bodies, EGL rendering)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render a synthetic RGB-D people dataset (RGB, metric depth, mask at two resolutions)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; a rerun resumes)")
    parser.add_argument("--subjects", type=int, required=True, help="number of distinct bodies")
    parser.add_argument("--views-per-subject", type=int, required=True, help="poses/views rendered per body")
    parser.add_argument("--seed", type=int, default=0, help="master seed; same seed = byte-identical files")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (each with one torch thread)")
    parser.add_argument("--resolution", type=int, default=256, help="high resolution; the low one is a quarter")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of subjects in the test split")
    parser.add_argument(
        "--backgrounds",
        choices=("none", "solid", "gradient", "noise", "mixed"),
        default="mixed",
        help="background behind the person (none = black)",
    )
    parser.add_argument(
        "--background-dir",
        type=Path,
        default=None,
        help="folder of background photos (they replace the --backgrounds kind; with mixed they are one choice)",
    )
    parser.add_argument("--age-range", choices=("adult", "wide"), default="adult", help="adult: 18-70, wide: 10-85")
    parser.add_argument(
        "--no-reject-intersections",
        dest="reject_intersections",
        action="store_false",
        help="keep self-intersecting poses (faster)",
    )
    randomisation = parser.add_argument_group("randomisations (all on by default; recorded per sample in meta/)")
    for flag, dest, what in (
        ("--no-clothing-textures", "clothing_textures", "one flat colour per garment, fixed sleeve/trouser cuts"),
        ("--no-multi-lights", "multi_lights", "one white Lambertian light instead of 2-3 coloured lights"),
        ("--no-camera-effects", "camera_effects", "no exposure/white balance/blur/gamma/noise/JPEG on the RGB"),
        ("--no-varied-framing", "varied_framing", "full bodies only (no upper body, head and shoulders, cut)"),
        ("--no-background-jitter", "background_jitter", "plain crops of background photos (no flips, colour jitter)"),
    ):
        randomisation.add_argument(flag, dest=dest, action="store_false", help=what)
    randomisation.add_argument(
        "--occluder-share", type=float, default=0.25, help="share of samples with an occluder in front (0 = off)"
    )
    randomisation.add_argument(
        "--photo-share",
        type=float,
        default=0.6,
        help="with --backgrounds mixed and --background-dir: share of photo backgrounds",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rgbd_fusion_core.synth.generate import GeneratorConfig, generate

    config = GeneratorConfig(
        out=args.out,
        subjects=args.subjects,
        views_per_subject=args.views_per_subject,
        seed=args.seed,
        workers=args.workers,
        resolution=args.resolution,
        test_fraction=args.test_fraction,
        backgrounds=args.backgrounds,
        background_dir=args.background_dir,
        age_range=args.age_range,
        reject_intersections=args.reject_intersections,
        clothing_textures=args.clothing_textures,
        multi_lights=args.multi_lights,
        camera_effects=args.camera_effects,
        varied_framing=args.varied_framing,
        occluder_share=args.occluder_share,
        photo_share=args.photo_share,
        background_jitter=args.background_jitter,
    )
    index = generate(config, progress=not args.quiet)
    counts = {name: len(subjects) for name, subjects in index.splits.items()}
    print(
        f"wrote {len(index.samples)} samples of {sum(counts.values())} subjects ({counts}) to {index.root}; "
        f"pose rejection rate {index.generator['rejection_rate']:.1%}"
    )
    return 0
