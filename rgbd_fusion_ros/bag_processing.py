"""One offline run over a rosbag2: read and match frames, infer in batches, write the output bag (and files).

The input is only read. The output is built in a hidden staging folder next to its final path and renamed
when complete (``staged_directory``); an existing output is replaced only with ``overwrite``. Every output
message carries the input image's header stamp and frame id, and the image's bag time. Frames that cannot be
processed are skipped and counted by reason; the run fails when no frame could be processed, and when frames
were lost to a damaged bag (undecodable messages, a read error midway) unless ``allow_partial`` is set.
Staging folders left beside the output by killed runs are removed, and reported, by the next run.
No ROS installation needed (``rosbags``); heavy imports happen inside ``process_bag``.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rgbd_fusion_ros.bag_io import FrameTopics
    from rgbd_fusion_ros.messages import OutputOptions

DEFAULT_PREFIX = "/rgbd_fusion"
DEFAULT_SYNC_TOLERANCE_S = 0.01  # as the node's sync_tolerance_s
TOPIC_NAME = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)*/?$")
NOT_SELECTED = "not selected (--every)"


@dataclass(frozen=True)
class BagJob:
    """Everything ``process_bag`` needs besides the pipeline (paths, topics, what to write)."""

    input: Path
    output: Path
    topics: FrameTopics
    output_options: OutputOptions
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
    allow_partial: bool = False  # keep the output when frames were lost to a damaged bag

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
    images_unread: int | None = None  # image messages the metadata lists but a read error left unread
    written: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    output: Path | None = None
    export_dir: Path | None = None

    def frames_lost(self) -> int:
        """Frames lost to damage: undecodable image messages plus images a read error left unread."""
        undecodable = sum(n for reason, n in self.skipped.items() if reason.startswith("image message cannot be"))
        return undecodable + (self.images_unread or 0)

    def damaged(self) -> bool:
        return bool(self.read_error or self.corrupt_messages)

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
        if self.frames_lost():
            unread = "" if self.images_unread is not None else " (and an unknown number not read)"
            lines.append(f"  frames lost to a damaged bag: {self.frames_lost()}{unread}")
        if self.output:
            lines.append(f"wrote {self.output}:")
            lines += [f"  {topic}: {count} messages" for topic, count in sorted(self.written.items())]
        if self.export_dir:
            lines.append(f"exported files to {self.export_dir}")
        return lines


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


def check_job(job: BagJob) -> None:
    """Refuse bad flags and unsafe paths before anything is read or written."""
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


def _storage_of(bag: Path) -> str:
    """'mcap' or 'sqlite3': the storage of the input bag (a folder, or a single .mcap file)."""
    return "mcap" if bag.suffix == ".mcap" or any(bag.glob("*.mcap")) else "sqlite3"


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
            if result.people_found == 0:  # nobody in view: nothing written for this frame
                self.summary.skipped["nobody found in the frame"] += 1
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


def _report_stale(path: Path) -> None:
    print(f"removed {path}, the unfinished output of a run that was killed", file=sys.stderr)


def process_bag(job: BagJob, pipeline) -> BagSummary:
    """Run ``pipeline`` over the bag described by ``job``; returns the summary. See the module docstring.

    Raises RuntimeError (and leaves no output) when no frame could be processed, or when the bag is damaged
    (frames lost) and ``job.allow_partial`` is not set.
    """
    from tqdm import tqdm

    from rgbd_fusion_core.io.outputs import staged_directory
    from rgbd_fusion_ros.bag_io import NS, ReadStats, bag_typestore, open_bag, read_frames, resolve_connections
    from rgbd_fusion_ros.bag_output import OrderedBagWriter
    from rgbd_fusion_ros.export_files import ExportWriter

    check_job(job)
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

        bag_path = stack.enter_context(staged_directory(job.output, job.overwrite, _report_stale))
        export = None
        if job.export_dir:
            export_path = stack.enter_context(staged_directory(job.export_dir, job.overwrite, _report_stale))
            export = stack.enter_context(ExportWriter(export_path))
        writer = stack.enter_context(OrderedBagWriter(bag_path, job.storage or _storage_of(job.input), typestore))
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
        if stats.images_read > stats.images_selected:
            summary.skipped[NOT_SELECTED] = stats.images_read - stats.images_selected
        summary.corrupt_messages = stats.corrupt_messages
        summary.read_error = stats.read_error
        if stats.read_error and start_ns is None and end_ns is None:
            listed = sum(c.msgcount for c in connections["image"])
            summary.images_unread = max(listed - stats.images_read, 0)
        summary.wall_s = time.perf_counter() - began
        if summary.processed == 0:
            raise RuntimeError("no frame could be processed, nothing written:\n" + "\n".join(summary.lines()))
        if summary.damaged() and not job.allow_partial:
            raise RuntimeError(
                f"the bag is damaged: {summary.frames_lost()} frame(s) lost, nothing written (--allow-partial "
                f"writes the {summary.processed} processed):\n" + "\n".join(summary.lines())
            )
        summary.written = writer.written  # the same Counter: complete once the writer has closed
    summary.output = job.output
    summary.export_dir = job.export_dir
    summary.wall_s = time.perf_counter() - began
    return summary
