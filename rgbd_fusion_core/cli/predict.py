"""rgbd-fusion predict: metric depth, a point cloud and a figure for one RGB image of a person."""

from rgbd_fusion_core.cli.pipeline_args import add_pipeline_arguments

HELP = "predict metric depth and a coloured point cloud of the person in one RGB image"
NEAREST_PLAUSIBLE_M = 0.3  # a person's surface nearer than this (median) is a sign of wrong intrinsics


def configure(parser):
    parser.add_argument("image", help="RGB image file (PNG/JPEG; any size)")
    parser.add_argument("--mask", default=None, help="person mask image (nonzero = person); also places the crop")
    parser.add_argument("--roi", default=None, help="person box 'x,y,w,h' in pixels (used when no mask)")
    parser.add_argument(
        "--depth",
        default=None,
        help="sensor depth (.png 16-bit mm, .npy/.exr metres): skips stage 1 and sets the scale",
    )
    parser.add_argument(
        "--camera",
        default=None,
        help="intrinsics YAML/JSON (ROS camera_info YAML, K, or fx/fy/cx/cy); default: from the photo's EXIF "
        "(35 mm equivalent focal length), else a 60 deg FOV guess",
    )
    parser.add_argument(
        "--fov",
        type=float,
        default=None,
        metavar="DEG",
        help="the camera's horizontal field of view in degrees, when there is no --camera file (instead of the "
        "EXIF focal length or the 60 deg guess); the metric scale of a photo depends on it",
    )
    parser.add_argument("--out", required=True, help="output folder")
    add_pipeline_arguments(parser)


def run(args) -> int:
    from pathlib import Path

    from rgbd_fusion_core.cli.pipeline_args import pipeline_from_args
    from rgbd_fusion_core.inference.pipeline_io import Frame
    from rgbd_fusion_core.io.camera_file import default_intrinsics, photo_intrinsics, read_camera_file
    from rgbd_fusion_core.io.imageio import read_depth_m, read_mask, read_rgb
    from rgbd_fusion_core.io.result_files import write_result

    rgb = read_rgb(args.image)
    h, w = rgb.shape[:2]
    if args.camera and args.fov is not None:
        raise ValueError("give either --camera or --fov, not both")
    if args.camera:
        K = read_camera_file(args.camera, image_size=(w, h))
    elif args.fov is not None:
        if not 1.0 <= args.fov <= 179.0:
            raise ValueError(f"--fov must be a horizontal field of view between 1 and 179 degrees, got {args.fov}")
        K = default_intrinsics(w, h, args.fov)
    else:
        K, source = photo_intrinsics(args.image, w, h)
        print(f"no --camera given: intrinsics from {source} (fx = {K[0, 0]:.1f} px)")
    mask = read_mask(args.mask) if args.mask else None
    roi = tuple(int(v) for v in args.roi.split(",")) if args.roi else None
    depth = None
    if args.depth:
        depth = read_depth_m(args.depth, unit="mm" if Path(args.depth).suffix.lower() == ".png" else "m")
    pipeline = pipeline_from_args(args)
    result = pipeline(Frame(rgb=rgb, K=K, mask=mask, roi=roi, sensor_depth=depth))
    summary, _ = write_result(args.out, result)
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
    print(
        f"{len(result.points)} points, z_ref {result.z_ref:.2f} m ({result.z_ref_source}), {result.nfe} NFE; {timings}"
    )
    print(f"wrote {', '.join(summary['files'].values())} to {args.out}")
    if not args.camera and result.z_ref_source == "pose" and result.z_ref < NEAREST_PLAUSIBLE_M:
        print(
            f"note: the person comes out {result.z_ref:.2f} m from the camera, nearer than people are photographed; "
            "the intrinsics probably do not fit this photo's lens (a longer one?): give --camera or --fov for a "
            "right metric scale"
        )
    return 0
