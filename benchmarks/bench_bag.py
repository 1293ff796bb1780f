"""Bag tool throughput against the bare pipeline on the same frames, in the same process: prints JSON.

    python benchmarks/bench_bag.py --model MODEL_DIR [--frames 16 --width 640 --height 480 --batch 4]

The bag tool reads (and converts) frames on one thread and writes results on another while its main thread
infers. Each round times, interleaved: the pipeline alone on frames decoded beforehand (batches of ``--batch``);
the whole bag run (read, match, decode, infer, build, serialise, write, finalise; model already loaded); and the
same bag run with a stand-in that replays one real result instead of inferring (the tool alone). Medians of
``--repeats`` rounds:

``pipeline_fps``: the pipeline alone. ``bag_fps``: the bag run, reading and writing overlapped with inference
(``ratio`` = bag_fps / pipeline_fps, target >= 0.9; ``overhead_ms_per_frame``: its extra time per frame).
``tool_own_ms_per_frame``: the tool's own cost, the reader's and writer's busy time in the replay run (read +
convert + write), and ``tool_only_ms_per_frame`` that run's wall time. ``serial_fps``: the rate a run that did
the parts one after another would reach, from the sum of the parts (pipeline alone + the tool's own cost);
``overlap_gain`` = serial time / bag run time, and ``hidden_share`` the share of the tool's own cost the overlap
hid. ``busy_ms_per_frame``: the parts' busy time inside the bag run itself (inflated where they compete for
the CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def decoded_frames(bag: Path, topics) -> list:
    """Every frame of the bag as a pipeline ``Frame`` (untimed preparation for the pipeline-only run)."""
    from rgbd_fusion_ros.bag_io import bag_typestore, open_bag, read_frames, resolve_connections
    from rgbd_fusion_ros.conversions import frame_from_messages

    typestore = bag_typestore()
    reader = open_bag(bag)
    try:
        connections = resolve_connections(reader, topics)
        return [frame_from_messages(m.image, m.camera_info) for m in read_frames(reader, connections, typestore, 0.01)]
    finally:
        reader.close()


def time_pipeline(pipeline, frames: list, batch: int) -> float:
    """Seconds for the pipeline alone over ``frames`` in batches."""
    began = time.perf_counter()
    for start in range(0, len(frames), batch):
        pipeline(frames[start : start + batch])
    return time.perf_counter() - began


class ReplayPipeline:
    """Returns a precomputed result for every frame after ``seconds_per_frame`` asleep: with 0 it isolates the
    bag tool's own cost; otherwise it stands in for a backend that leaves the CPU free while it infers (a GPU)."""

    def __init__(self, result, seconds_per_frame: float = 0.0):
        self.result = result
        self.seconds_per_frame = seconds_per_frame

    def __call__(self, frames: list) -> list:
        time.sleep(self.seconds_per_frame * len(frames))
        return [self.result] * len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder; None = the shipped model")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps1", type=int)
    parser.add_argument("--steps2", type=int)
    parser.add_argument(
        "--person-source",
        default="none",
        help="the demo bag's cartoon frames hold nobody a person finder finds: one centred crop by default",
    )
    parser.add_argument(
        "--device-ms",
        type=float,
        help="infer with a stand-in that sleeps this long per frame (a GPU-like backend: CPU idle meanwhile)",
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    parser.add_argument("--compressed", action="store_true", help="PNG CompressedImage input")
    parser.add_argument("--copy-input", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from rgbd_fusion_core.inference.pipeline import Pipeline
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig
    from rgbd_fusion_ros.bag_io import FrameTopics
    from rgbd_fusion_ros.bag_processing import BagJob, process_bag
    from rgbd_fusion_ros.demo_bag import write_demo_bag
    from rgbd_fusion_ros.messages import OutputOptions

    steps = {name: getattr(args, name) for name in ("steps1", "steps2") if getattr(args, name) is not None}
    config = PipelineConfig(seed=0, person_source=args.person_source, **steps)
    pipeline = Pipeline.from_pretrained(args.model, backend=args.backend, device=args.device, config=config)
    device, steps = str(pipeline.device), [pipeline.config.steps1, pipeline.config.steps2]
    with tempfile.TemporaryDirectory(prefix="bench_bag_") as scratch:
        scratch = Path(scratch)
        bag = scratch / "input"
        topics = write_demo_bag(
            bag, args.frames, args.width, args.height, storage=args.storage, compressed=args.compressed
        )
        frame_topics = FrameTopics(topics.compressed_image if args.compressed else topics.image, topics.camera_info)
        frames = decoded_frames(bag, frame_topics)
        pipeline(frames[: args.batch])  # warm-up (allocations, lazy initialisation)

        def timed_bag_run(name: str, runner) -> tuple:
            job = BagJob(
                input=bag,
                output=scratch / name,
                topics=frame_topics,
                output_options=OutputOptions(),
                batch=args.batch,
                copy_input=args.copy_input,
                progress=False,
            )
            began = time.perf_counter()
            summary = process_bag(job, runner)
            assert summary.processed == args.frames, summary.lines()
            return time.perf_counter() - began, summary

        replay = ReplayPipeline(pipeline(frames[:1])[0])
        if args.device_ms is not None:
            pipeline = ReplayPipeline(replay.result, args.device_ms / 1000)
        pipeline_s, bag_s, tool_s, own_s, serial_s, busy = [], [], [], [], [], []
        for round_index in range(args.repeats):
            pipeline_s.append(time_pipeline(pipeline, frames, args.batch))
            bag_wall, full = timed_bag_run(f"output_{round_index}", pipeline)
            tool_wall, tool = timed_bag_run(f"replay_{round_index}", replay)
            bag_s.append(bag_wall)
            tool_s.append(tool_wall)
            own_s.append(tool.read_s + tool.write_s)
            serial_s.append(pipeline_s[-1] + own_s[-1])
            busy.append({"read": full.read_s, "infer": full.infer_s, "write": full.write_s})

    pipeline_median, bag_median = statistics.median(pipeline_s), statistics.median(bag_s)
    own_median, serial_median = statistics.median(own_s), statistics.median(serial_s)
    report = {
        "benchmark": "bag_tool_vs_pipeline",
        "frames": args.frames,
        "image": f"{args.width}x{args.height}",
        "input": "CompressedImage (png)" if args.compressed else "Image rgb8",
        "storage": args.storage,
        "copy_input": args.copy_input,
        "batch": args.batch,
        "backend": args.backend if args.device_ms is None else f"stand-in sleeping {args.device_ms:g} ms per frame",
        "device": device,
        "steps": steps,
        "person_source": args.person_source,
        "model": args.model or "shipped default",
        "pipeline_fps": round(args.frames / pipeline_median, 3),
        "bag_fps": round(args.frames / bag_median, 3),
        "ratio": round(pipeline_median / bag_median, 4),
        "overhead_ms_per_frame": round(1000 * (bag_median - pipeline_median) / args.frames, 2),
        "tool_own_ms_per_frame": round(1000 * own_median / args.frames, 2),
        "tool_only_ms_per_frame": round(1000 * statistics.median(tool_s) / args.frames, 2),
        "serial_fps": round(args.frames / serial_median, 3),
        "overlap_gain": round(serial_median / bag_median, 4),
        "hidden_share": round((serial_median - bag_median) / own_median, 3),
        "busy_ms_per_frame": {
            part: round(1000 * statistics.median(b[part] for b in busy) / args.frames, 2) for part in busy[0]
        },
        "target_ratio": 0.9,
        "rounds_s": {
            "pipeline": [round(s, 3) for s in pipeline_s],
            "bag": [round(s, 3) for s in bag_s],
            "serial_sum": [round(s, 3) for s in serial_s],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
