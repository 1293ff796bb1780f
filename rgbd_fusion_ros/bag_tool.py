"""``rgbd-fusion bag`` / ``ros2 run rgbd_fusion_ros rgbd_fusion_bag``: run the pipeline over a rosbag2 offline.

Reads a bag (sqlite3 or mcap) with ``rosbags`` (no ROS installation needed), runs the same ``Pipeline`` as the
node in batches (reading and writing overlapped with inference), and writes a new bag with the node's outputs
(depth image, depth camera_info, point cloud, and optional ones) under a prefix; see ``bag_processing`` for what
a run does and guarantees. This module is the command line: flags, model loading, the summary printout.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from rgbd_fusion_core.cli.pipeline_args import add_pipeline_arguments
from rgbd_fusion_ros.bag_processing import DEFAULT_PREFIX, DEFAULT_SYNC_TOLERANCE_S, BagJob

HELP = "run the pipeline over a rosbag2 (sqlite3/mcap) and write depth images and point clouds to a new bag"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input rosbag2 folder (sqlite3 or mcap); only read")
    parser.add_argument("--output", type=Path, required=True, help="output rosbag2 folder (must not exist)")
    parser.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--camera-info-topic", required=True, help="sensor_msgs/CameraInfo topic of the image")
    parser.add_argument("--mask-topic", help="mono8 person-mask topic; None = the image's alpha channel if any")
    parser.add_argument("--ignore-alpha", action="store_true", help="do not use an rgba8/bgra8 alpha channel as mask")
    parser.add_argument("--depth-topic", help="16UC1/32FC1 sensor depth topic (stage-2-only mode); None = none")
    parser.add_argument(
        "--sync-tolerance",
        type=float,
        default=DEFAULT_SYNC_TOLERANCE_S,
        help="largest header stamp difference (s) between an image and its partners",
    )
    parser.add_argument("--batch", type=int, default=4, help="frames per inference batch")
    parser.add_argument("--every", type=int, default=1, help="process every N-th image")
    parser.add_argument("--start", type=float, help="start, s after the bag begins; None = its beginning")
    parser.add_argument("--end", type=float, help="end, s after the bag begins; None = its end")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="namespace of the output topics")
    parser.add_argument("--frame-id", help="frame_id of the outputs; None = the input image's")
    parser.add_argument(
        "--depth-encoding",
        choices=("32FC1", "16UC1"),
        default="32FC1",
        help="depth images as float metres (NaN = none) or uint16 millimetres (0 = none)",
    )
    parser.add_argument("--low-res", action="store_true", help="also write depth/low_res (stage-1 64x64)")
    parser.add_argument("--copy-input", action="store_true", help="also copy the input topics into the output")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), help="output storage; None = the input's")
    parser.add_argument("--export-dir", type=Path, help="also write per-frame PNG/NPY/PLY files and index.csv here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (and export dir)")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="write what could be processed of a damaged bag (default: frames lost to damage fail the run)",
    )
    add_pipeline_arguments(parser)


def job_from_args(args: argparse.Namespace) -> BagJob:
    from rgbd_fusion_ros.bag_io import FrameTopics
    from rgbd_fusion_ros.messages import OutputOptions

    return BagJob(
        input=args.input,
        output=args.output,
        topics=FrameTopics(args.image_topic, args.camera_info_topic, args.mask_topic, args.depth_topic),
        output_options=OutputOptions(
            depth_encoding=args.depth_encoding,
            full_frame=args.full_frame,
            low_res=args.low_res,
            uncertainty=args.uncertainty_samples > 0,
        ),
        storage=args.storage,
        prefix=args.prefix,
        copy_input=args.copy_input,
        batch=args.batch,
        every=args.every,
        start_s=args.start,
        end_s=args.end,
        sync_tolerance_s=args.sync_tolerance,
        frame_id=args.frame_id,
        use_alpha_as_mask=not args.ignore_alpha,
        export_dir=args.export_dir,
        overwrite=args.overwrite,
        allow_partial=args.allow_partial,
    )


def load_pipeline(args: argparse.Namespace):
    """The inference ``Pipeline`` for the model, backend and sampling flags given."""
    from rgbd_fusion_core.cli.pipeline_args import pipeline_from_args

    return pipeline_from_args(args, video=True)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt (so the staged output is cleaned up) while the block runs.

    Only the main thread can install signal handlers; elsewhere the block runs unchanged.
    """

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _preflight(job: BagJob) -> None:
    """The checks that need no model: flags, paths, and that the bag opens and holds the topics."""
    from rgbd_fusion_ros.bag_io import open_bag, resolve_connections
    from rgbd_fusion_ros.bag_processing import check_job

    check_job(job)
    reader = open_bag(job.input)
    try:
        resolve_connections(reader, job.topics)
    finally:
        reader.close()


def run(args: argparse.Namespace) -> int:
    from rgbd_fusion_ros.bag_processing import process_bag

    job = job_from_args(args)
    _preflight(job)  # fail fast, before the model loads
    with _sigterm_as_interrupt():
        summary = process_bag(job, load_pipeline(args))
    print("\n".join(summary.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script ``rgbd_fusion_bag`` (same flags as ``rgbd-fusion bag``, which this package registers)."""
    from rgbd_fusion_core.apps.threads import prefer_passive_omp_wait
    from rgbd_fusion_core.cli.main import run_command

    prefer_passive_omp_wait()
    parser = argparse.ArgumentParser(
        prog="rgbd_fusion_bag", description=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    configure(parser)
    return run_command("rgbd_fusion_bag", run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
