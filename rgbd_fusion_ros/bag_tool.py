"""``rgbd-fusion bag`` / ``ros2 run rgbd_fusion_ros rgbd_fusion_bag``: run the pipeline over a rosbag2 offline.

Reads a bag (sqlite3 or mcap) with ``rosbags`` (no ROS installation needed), runs the same ``Pipeline`` as the
node in batches, and writes a new bag with the node's outputs (depth image, depth camera_info, point cloud, and
optional ones) under a prefix, each message with the input image's header stamp and frame id and bag time.
Safety: the input is only read; the output is built in a hidden folder next to its final path and renamed
when complete; an existing output is replaced only with ``--overwrite``. Frames that cannot be processed are
skipped and counted by reason; the run fails only when no frame could be processed.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HELP = "run the pipeline over a rosbag2 (sqlite3/mcap) and write depth images and point clouds to a new bag"

DEFAULT_PREFIX = "/rgbd_fusion"
DEFAULT_SYNC_TOLERANCE_S = 0.01  # as the node's sync_tolerance_s
TOPIC_NAME = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)*/?$")
NOT_SELECTED = "not selected (--every)"


@dataclass(frozen=True)
class BagJob:
    """Everything ``process_bag`` needs besides the pipeline (paths, topics, what to write)."""

    input: Path
    output: Path
    topics: object  # bag_io.FrameTopics
    output_options: object  # messages.OutputOptions
    storage: str | None = None  # None = same as the input
    prefix: str = DEFAULT_PREFIX
    copy_input: bool = False
    batch: int = 4
    every: int = 1
    start_s: float | None = None
    end_s: float | None = None
    sync_tolerance_s: float = DEFAULT_SYNC_TOLERANCE_S
    frame_id: str | None = None
    use_alpha_as_mask: bool = True
    export_dir: Path | None = None
    overwrite: bool = False
    progress: bool = True

    def output_topic(self, name: str) -> str:
        """Relative output name (e.g. "depth/image") -> absolute bag topic under the prefix."""
        return f"{self.prefix.rstrip('/')}/{name}"


@dataclass
class BagSummary:
    """What a run did. skipped: reason -> frames; written: topic -> messages."""

    images_read: int = 0
    processed: int = 0
    skipped: Counter = field(default_factory=Counter)
    corrupt_messages: Counter = field(default_factory=Counter)
    read_error: str | None = None
    written: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    output: Path | None = None
    export_dir: Path | None = None

    def lines(self) -> list[str]:
        rate = self.processed / self.wall_s if self.wall_s > 0 else 0.0
        lines = [
            f"frames read: {self.images_read}, processed: {self.processed}, skipped: {sum(self.skipped.values())}"
            f" ({self.wall_s:.1f} s, {rate:.2f} processed frames/s)"
        ]
        lines += [f"  skipped {count}: {reason}" for reason, count in self.skipped.most_common()]
        lines += [
            f"  undecodable messages on {topic}: {count}" for topic, count in sorted(self.corrupt_messages.items())
        ]
        if self.read_error:
            lines.append(f"  the bag could not be read to its end: {self.read_error}")
        if self.output:
            lines.append(f"wrote {self.output}:")
            lines += [f"  {topic}: {count} messages" for topic, count in sorted(self.written.items())]
        if self.export_dir:
            lines.append(f"exported files to {self.export_dir}")
        return lines


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
    parser.add_argument("--model", help="model folder (stage1/stage2.safetensors); None = the shipped model")
    parser.add_argument(
        "--backend", choices=("torch", "onnxruntime", "tensorrt"), default="torch", help="inference backend"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--sampler1", help="stage-1 sampler: ddpm, ddim or dpmpp2m; None = the pipeline's")
    parser.add_argument("--steps1", type=int, help="sampling steps of stage 1; None = the pipeline's")
    parser.add_argument("--sampler2", help="stage-2 sampler: ddpm, ddim or dpmpp2m; None = the pipeline's")
    parser.add_argument("--steps2", type=int, help="sampling steps of stage 2; None = the pipeline's")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed, same seed same output; -1 = random")
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
    parser.add_argument("--full-frame", action="store_true", help="also write depth/image_full (input-aligned)")
    parser.add_argument("--low-res", action="store_true", help="also write depth/low_res (stage-1 64x64)")
    parser.add_argument(
        "--uncertainty-samples", type=int, default=0, help="stage-2 samples for depth/uncertainty (0 = off, else >= 2)"
    )
    parser.add_argument("--copy-input", action="store_true", help="also copy the input topics into the output")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), help="output storage; None = the input's")
    parser.add_argument("--export-dir", type=Path, help="also write per-frame PNG/NPY/PLY files and index.csv here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (and export dir)")


def _check_paths(job: BagJob) -> None:
    """Refuse outputs that could touch the input or each other, and existing outputs without --overwrite."""
    source = job.input.resolve()
    targets = [("--output", job.output)] + ([("--export-dir", job.export_dir)] if job.export_dir else [])
    for flag, target in targets:
        resolved = target.resolve()
        if resolved == source or source in resolved.parents or resolved in source.parents:
            raise ValueError(f"{flag} {target} overlaps the input bag {job.input}; the input is never modified")
        if target.exists() and not job.overwrite:
            raise FileExistsError(f"{flag} {target} exists already (use --overwrite to replace it)")
        if not resolved.parent.is_dir():
            raise FileNotFoundError(f"{flag} {target}: folder {resolved.parent} does not exist")
    if job.export_dir and job.export_dir.resolve() == job.output.resolve():
        raise ValueError("--export-dir and --output must be different folders")


def _check_job(job: BagJob) -> None:
    if job.batch < 1 or job.every < 1:
        raise ValueError(f"--batch and --every must be >= 1, got {job.batch} and {job.every}")
    if job.sync_tolerance_s < 0:
        raise ValueError(f"--sync-tolerance must be >= 0 s, got {job.sync_tolerance_s}")
    if job.start_s is not None and job.start_s < 0:
        raise ValueError(f"--start must be >= 0 s, got {job.start_s}")
    if job.start_s is not None and job.end_s is not None and job.end_s <= job.start_s:
        raise ValueError(f"--end ({job.end_s} s) must be after --start ({job.start_s} s)")
    if not TOPIC_NAME.match(job.prefix):
        raise ValueError(f"--prefix {job.prefix!r} is not a ROS namespace like /rgbd_fusion")
    _check_paths(job)


def _storage_of(reader) -> str:
    """'mcap' or 'sqlite3', from the storage file of the input bag."""
    return "mcap" if any(Path(reader.path).glob("*.mcap")) else "sqlite3"


def _estimated_images(reader, connections, start_ns: int | None, end_ns: int | None, every: int) -> int:
    """Image messages the run will select (exact without a time range, proportional to it with one)."""
    count = sum(c.msgcount for c in connections["image"])
    duration = max(reader.end_time - reader.start_time, 1)
    lo = reader.start_time if start_ns is None else max(start_ns, reader.start_time)
    hi = reader.end_time if end_ns is None else min(end_ns, reader.end_time)
    if start_ns is not None or end_ns is not None:
        count = round(count * max(hi - lo, 0) / duration)
    return -(-count // every)


def _infer(pipeline, frames: list) -> list:
    """Run one batch; if the batch is refused (ValueError), run its frames one by one to find the culprit.

    Returns per frame a PipelineResult or the reason it failed.
    """
    try:
        return list(pipeline(frames))
    except ValueError as error:
        if len(frames) == 1:
            return [f"pipeline refused the frame: {error}"]
    results = []
    for frame in frames:
        try:
            results.append(pipeline([frame])[0])
        except ValueError as error:
            results.append(f"pipeline refused the frame: {error}")
    return results


class _BagRun:
    """The work of one run once the output is open: batch the matched frames, infer, write in time order."""

    def __init__(self, job: BagJob, pipeline, typestore, writer, export, summary: BagSummary):
        from rgbd_fusion_ros.messages import OUTPUT_TOPICS, rosbags_types

        self.job, self.pipeline, self.typestore = job, pipeline, typestore
        self.types = rosbags_types(typestore)
        self.writer, self.export, self.summary = writer, export, summary
        self.names = job.output_options.enabled_outputs()
        self.connections = {name: writer.add_topic(job.output_topic(name), OUTPUT_TOPICS[name]) for name in self.names}
        self.batch: list = []  # (MatchedFrame, Frame)

    def add(self, matched) -> None:
        """Queue a matched frame (or count why it is skipped); runs a batch when one is full."""
        from rgbd_fusion_ros.conversions import frame_from_messages

        if matched.problem is None:
            try:
                frame = frame_from_messages(
                    matched.image, matched.camera_info, matched.mask, matched.depth, self.job.use_alpha_as_mask
                )
                self.batch.append((matched, frame))
            except ValueError as error:
                matched.problem = str(error)
        if matched.problem is not None:
            self.summary.skipped[matched.problem] += 1
            if not self.batch:
                self.writer.flush(matched.log_time_ns)
        if len(self.batch) >= self.job.batch:
            self.run_batch()

    def run_batch(self) -> None:
        """Infer the queued frames, write their outputs (and export files), flush the bag up to the last one."""
        from rgbd_fusion_ros.bag_io import stamp_ns
        from rgbd_fusion_ros.messages import OUTPUT_TOPICS, build_outputs, copy_header

        if not self.batch:
            return
        results = _infer(self.pipeline, [frame for _, frame in self.batch])
        for (matched, _), result in zip(self.batch, results):
            if isinstance(result, str):
                self.summary.skipped[result] += 1
                continue
            header = copy_header(self.types, matched.image.header, self.job.frame_id)
            for name, message in build_outputs(self.types, result, header, self.job.output_options).items():
                raw = self.typestore.serialize_cdr(message, OUTPUT_TOPICS[name])
                self.writer.push(self.connections[name], matched.log_time_ns, raw)
            if self.export:
                self.export.write(stamp_ns(header), header.frame_id, result)
            self.summary.processed += 1
        self.writer.flush(self.batch[-1][0].log_time_ns)
        self.batch.clear()


def process_bag(job: BagJob, pipeline) -> BagSummary:
    """Run ``pipeline`` over the bag described by ``job``; returns the summary. See the module docstring.

    Raises RuntimeError (and leaves no output) when no frame could be processed.
    """
    from tqdm import tqdm

    from rgbd_fusion_core.outputs import staged_directory
    from rgbd_fusion_ros.bag_io import NS, ReadStats, bag_typestore, open_bag, read_frames, resolve_connections
    from rgbd_fusion_ros.bag_output import OrderedBagWriter
    from rgbd_fusion_ros.export_files import ExportWriter

    _check_job(job)
    began = time.perf_counter()
    typestore = bag_typestore()
    summary = BagSummary()
    stats = ReadStats()
    with ExitStack() as stack:
        reader = open_bag(job.input)
        stack.callback(reader.close)
        connections = resolve_connections(reader, job.topics)
        start_ns = None if job.start_s is None else reader.start_time + int(job.start_s * NS)
        end_ns = None if job.end_s is None else reader.start_time + int(job.end_s * NS)
        input_topics = {c.topic for conns in connections.values() for c in conns}
        clashes = input_topics & {job.output_topic(n) for n in job.output_options.enabled_outputs()}
        if clashes:
            raise ValueError(f"output topics {sorted(clashes)} would clash with input topics; choose another --prefix")

        bag_path = stack.enter_context(staged_directory(job.output, job.overwrite))
        export = None
        if job.export_dir:
            export_path = stack.enter_context(staged_directory(job.export_dir, job.overwrite))
            export = stack.enter_context(ExportWriter(export_path))
        writer = stack.enter_context(OrderedBagWriter(bag_path, job.storage or _storage_of(reader), typestore))
        run = _BagRun(job, pipeline, typestore, writer, export, summary)
        if job.copy_input:
            for connection in (c for conns in connections.values() for c in conns):
                writer.copy_connection(connection)
        progress = stack.enter_context(
            tqdm(
                total=_estimated_images(reader, connections, start_ns, end_ns, job.every),
                unit="frame",
                desc="rgbd-fusion bag",
                disable=None if job.progress else True,
                file=sys.stderr,
            )
        )
        frames = read_frames(
            reader,
            connections,
            typestore,
            job.sync_tolerance_s,
            start_ns,
            end_ns,
            job.every,
            stats,
            on_message=writer.push_copy if job.copy_input else None,
        )
        for matched in frames:
            run.add(matched)
            progress.update(stats.images_selected - progress.n)
            progress.set_postfix(processed=summary.processed, skipped=sum(summary.skipped.values()), refresh=False)
        run.run_batch()
        progress.update(stats.images_selected - progress.n)

        summary.images_read = stats.images_read
        if job.every > 1:
            summary.skipped[NOT_SELECTED] = stats.images_read - stats.images_selected
        summary.corrupt_messages = stats.corrupt_messages
        summary.read_error = stats.read_error
        summary.wall_s = time.perf_counter() - began
        if summary.processed == 0:
            raise RuntimeError("no frame could be processed, nothing written:\n" + "\n".join(summary.lines()))
        summary.written = writer.written  # the same Counter: complete once the writer has closed
    summary.output = job.output
    summary.export_dir = job.export_dir
    summary.wall_s = time.perf_counter() - began
    return summary


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
    )


def load_pipeline(args: argparse.Namespace):
    """The inference ``Pipeline`` for the model, backend and sampling flags given."""
    from rgbd_fusion_core.pipeline import Pipeline
    from rgbd_fusion_core.pipeline_io import PipelineConfig

    sampling = {name: getattr(args, name) for name in ("sampler1", "steps1", "sampler2", "steps2")}
    config = PipelineConfig(
        seed=None if args.seed < 0 else args.seed,
        full_frame=args.full_frame,
        uncertainty_samples=args.uncertainty_samples,
        **{name: value for name, value in sampling.items() if value is not None},
    )
    return Pipeline.from_pretrained(args.model, backend=args.backend, device=args.device, config=config)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt (so the staged output is cleaned up) while the block runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _preflight(job: BagJob) -> None:
    """The checks that need no model: flags, paths, and that the bag opens and holds the topics."""
    from rgbd_fusion_ros.bag_io import open_bag, resolve_connections

    _check_job(job)
    reader = open_bag(job.input)
    try:
        resolve_connections(reader, job.topics)
    finally:
        reader.close()


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    _preflight(job)  # fail fast, before the model loads
    with _sigterm_as_interrupt():
        summary = process_bag(job, load_pipeline(args))
    print("\n".join(summary.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script ``rgbd_fusion_bag`` (same flags as ``rgbd-fusion bag``)."""
    from rgbd_fusion_core.cli.main import main as cli_main

    return cli_main(["bag", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
