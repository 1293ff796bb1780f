"""One offline run over a rosbag2: read and match frames, infer in batches, write the output bag (and files).

Reading (with decoding into pipeline frames) runs on a reader thread and writing on a writer thread, each
behind a bounded queue, while the calling thread infers: output order is kept, and an error on either thread
ends the run on the calling thread, naming the bag it came from.

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
    read_s: float = 0.0  # busy seconds of each part, overlapped in wall_s: reading and converting frames,
    infer_s: float = 0.0  # inference,
    write_s: float = 0.0  # building, serialising and writing the outputs
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
        if self.output:
            lines.append(
                f"  busy (overlapped): reading {self.read_s:.1f} s, inference {self.infer_s:.1f} s,"
                f" writing {self.write_s:.1f} s"
            )
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


def _read_items(job: BagJob, reader, connections, typestore, start_ns, end_ns, stats):
    """What the reader thread produces, in bag order: (input messages to copy read since the last item,
    MatchedFrame, pipeline Frame or None when the frame is skipped); a last (copies, None, None) item ends it.

    Unexpected errors name the bag's storage files.
    """
    from rgbd_fusion_ros.bag_io import read_frames, storage_files
    from rgbd_fusion_ros.conversions import frame_from_messages

    copies = []
    frames = read_frames(
        reader,
        connections,
        typestore,
        job.sync_tolerance_s,
        start_ns,
        end_ns,
        job.every,
        stats,
        on_message=(lambda *message: copies.append(message)) if job.copy_input else None,
    )
    try:
        for matched in frames:
            frame = None
            if matched.problem is None:
                try:
                    frame = frame_from_messages(
                        matched.image, matched.camera_info, matched.mask, matched.depth, job.use_alpha_as_mask
                    )
                except ValueError as error:
                    matched.problem = str(error)
            yield copies, matched, frame
            copies = []
        yield copies, None, None
    except Exception as error:
        raise RuntimeError(f"reading {storage_files(job.input)} failed ({type(error).__name__}: {error})") from error


class _BagRun:
    """The work of one run once the output is open: batch the frames read, infer, hand results to the writer.

    Inference runs on the calling thread; every use of the output bag and export files runs, in order, on the
    writer thread (``write``, which owns the ``OrderedBagWriter``).
    """

    def __init__(self, job: BagJob, pipeline, typestore, writer, export, summary: BagSummary, write, connections):
        from rgbd_fusion_ros.messages import rosbags_types

        self.job, self.pipeline, self.typestore = job, pipeline, typestore
        self.types = rosbags_types(typestore)
        self.writer, self.export, self.summary, self.write = writer, export, summary, write
        self.batch: list = []  # (MatchedFrame, Frame)
        self.copies: list = []  # input messages to copy, not yet handed to the writer
        self.connections: dict = {}  # output name -> connection, made on the writer thread
        self.infer_s = 0.0
        self._submit(self._add_connections, connections)

    def add(self, copies: list, matched, frame) -> None:
        """Take one item of ``_read_items``: queue the frame (or count why it is skipped); run a full batch."""
        self.copies += copies
        if frame is not None:
            self.batch.append((matched, frame))
        elif matched is not None:
            self.summary.skipped[matched.problem] += 1
            if not self.batch:
                self._submit(self._write, self._take_copies(), [], matched.log_time_ns)
        if len(self.batch) >= self.job.batch:
            self.run_batch()

    def run_batch(self) -> None:
        """Infer the queued frames, count them, and hand the processed ones to the writer thread."""
        if not self.batch:
            return
        began = time.perf_counter()
        results = _infer(self.pipeline, [frame for _, frame in self.batch])
        self.infer_s += time.perf_counter() - began
        processed = []
        for (matched, _), result in zip(self.batch, results):
            if isinstance(result, str):
                self.summary.skipped[result] += 1
            elif result.people_found == 0:  # nobody in view: nothing written for this frame
                self.summary.skipped["nobody found in the frame"] += 1
            else:
                processed.append((matched, result))
        self.summary.processed += len(processed)
        self._submit(self._write, self._take_copies(), processed, self.batch[-1][0].log_time_ns)
        self.batch = []

    def finish(self) -> None:
        """The last batch, and the input messages read after it."""
        self.run_batch()
        self._submit(self._write, self._take_copies(), [], None)

    def _take_copies(self) -> list:
        copies, self.copies = self.copies, []
        return copies

    def _submit(self, call, *args) -> None:
        """Run ``call(*args)`` on the writer thread; its errors name the output bag."""

        def named():
            try:
                call(*args)
            except Exception as error:
                raise RuntimeError(f"writing {self.job.output} failed ({type(error).__name__}: {error})") from error

        self.write.submit(named)

    def _add_connections(self, connections: dict[str, list]) -> None:
        """On the writer thread: the output topics, and twins of the input ones to copy."""
        from rgbd_fusion_ros.messages import OUTPUT_TOPICS

        names = self.job.output_options.enabled_outputs()
        self.connections = {
            name: self.writer.add_topic(self.job.output_topic(name), OUTPUT_TOPICS[name]) for name in names
        }
        if self.job.copy_input:
            for connection in (c for conns in connections.values() for c in conns):
                self.writer.copy_connection(connection)

    def _write(self, copies: list, processed: list, upto_ns: int | None) -> None:
        """On the writer thread: queue the copies and the processed frames' outputs (and export files), then
        write the bag up to ``upto_ns`` (None = everything)."""
        from rgbd_fusion_ros.bag_io import stamp_ns
        from rgbd_fusion_ros.messages import OUTPUT_TOPICS, build_outputs, copy_header

        for connection, log_time_ns, raw in copies:
            self.writer.push_copy(connection, log_time_ns, raw)
        for matched, result in processed:
            header = copy_header(self.types, matched.image.header, self.job.frame_id)
            for name, message in build_outputs(self.types, result, header, self.job.output_options).items():
                raw = self.typestore.serialize_cdr(message, OUTPUT_TOPICS[name])
                self.writer.push(self.connections[name], matched.log_time_ns, raw)
            if self.export:
                self.export.write(stamp_ns(header), header.frame_id, result)
        self.writer.flush(upto_ns)


def _report_stale(path: Path) -> None:
    print(f"removed {path}, the unfinished output of a run that was killed", file=sys.stderr)


def process_bag(job: BagJob, pipeline) -> BagSummary:
    """Run ``pipeline`` over the bag described by ``job``; returns the summary. See the module docstring.

    Raises RuntimeError (and leaves no output) when no frame could be processed, or when the bag is damaged
    (frames lost) and ``job.allow_partial`` is not set.
    """
    from tqdm import tqdm

    from rgbd_fusion_core.apps.background_threads import ReadAhead, SerialWorker
    from rgbd_fusion_core.io.outputs import staged_directory
    from rgbd_fusion_ros.bag_io import NS, ReadStats, bag_typestore, open_bag, resolve_connections
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
        writer = OrderedBagWriter(bag_path, job.storage or _storage_of(job.input), typestore)
        write = stack.enter_context(SerialWorker(writer, depth=2, name="bag-writer"))
        run = _BagRun(job, pipeline, typestore, writer, export, summary, write, connections)
        progress = stack.enter_context(
            tqdm(
                total=_estimated_images(reader, connections, start_ns, end_ns, job.every),
                unit="frame",
                desc="rgbd-fusion bag",
                disable=None if job.progress else True,
                file=sys.stderr,
            )
        )
        items = _read_items(job, reader, connections, typestore, start_ns, end_ns, stats)
        read = stack.enter_context(ReadAhead(items, depth=2 * job.batch, name="bag-reader"))
        for copies, matched, frame in read:
            run.add(copies, matched, frame)
            if matched is not None:
                progress.update()
                progress.set_postfix(processed=summary.processed, skipped=sum(summary.skipped.values()), refresh=False)
        run.finish()

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
                f"the bag {job.input} is damaged: {summary.frames_lost()} frame(s) lost, nothing written "
                f"(--allow-partial writes the {summary.processed} processed):\n" + "\n".join(summary.lines())
            )
        summary.written = writer.written  # the same Counter: complete once the writer has closed
        summary.read_s, summary.infer_s = read.busy_s, run.infer_s
    summary.write_s = write.busy_s  # complete once the writer has closed
    summary.output = job.output
    summary.export_dir = job.export_dir
    summary.wall_s = time.perf_counter() - began
    return summary
