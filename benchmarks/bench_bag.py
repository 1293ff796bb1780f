"""Bag tool throughput against the bare pipeline on the same frames, in the same process: prints JSON.

    python benchmarks/bench_bag.py --model MODEL_DIR [--frames 16 --width 640 --height 480 --batch 4]

``pipeline_fps``: frames/s of ``Pipeline`` alone on frames decoded beforehand (batches of ``--batch``).
``bag_fps``: processed frames/s of the whole bag run (read, match, decode, infer, build, serialise, write,
finalise), model already loaded. ``ratio`` = bag_fps / pipeline_fps (target >= 0.9); ``overhead_ms_per_frame``
is the bag run's extra time per frame. Each is the median of ``--repeats`` interleaved rounds.
``tool_only_ms_per_frame``: the same bag run with a stand-in that replays one real result instead of
inferring, i.e. the tool's own cost per frame (fixed costs of opening and closing bags included), free of the
noise of timing inference twice.
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
    """Returns a precomputed result for every frame: isolates the bag tool's own cost."""

    def __init__(self, result):
        self.result = result

    def __call__(self, frames: list) -> list:
        return [self.result] * len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder; None = the shipped model")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps1", type=int)
    parser.add_argument("--steps2", type=int)
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
    config = PipelineConfig(seed=0, **steps)
    pipeline = Pipeline.from_pretrained(args.model, backend=args.backend, device=args.device, config=config)
    with tempfile.TemporaryDirectory(prefix="bench_bag_") as scratch:
        scratch = Path(scratch)
        bag = scratch / "input"
        topics = write_demo_bag(
            bag, args.frames, args.width, args.height, storage=args.storage, compressed=args.compressed
        )
        frame_topics = FrameTopics(topics.compressed_image if args.compressed else topics.image, topics.camera_info)
        frames = decoded_frames(bag, frame_topics)
        pipeline(frames[: args.batch])  # warm-up (allocations, lazy initialisation)

        def timed_bag_run(name: str, runner) -> float:
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
            return time.perf_counter() - began

        replay = ReplayPipeline(pipeline(frames[:1])[0])
        pipeline_s, bag_s, tool_s = [], [], []
        for round_index in range(args.repeats):
            pipeline_s.append(time_pipeline(pipeline, frames, args.batch))
            bag_s.append(timed_bag_run(f"output_{round_index}", pipeline))
            tool_s.append(timed_bag_run(f"replay_{round_index}", replay))

    pipeline_median, bag_median = statistics.median(pipeline_s), statistics.median(bag_s)
    report = {
        "benchmark": "bag_tool_vs_pipeline",
        "frames": args.frames,
        "image": f"{args.width}x{args.height}",
        "input": "CompressedImage (png)" if args.compressed else "Image rgb8",
        "storage": args.storage,
        "copy_input": args.copy_input,
        "batch": args.batch,
        "backend": args.backend,
        "device": str(pipeline.device),
        "steps": [pipeline.config.steps1, pipeline.config.steps2],
        "model": args.model or "shipped default",
        "pipeline_fps": round(args.frames / pipeline_median, 3),
        "bag_fps": round(args.frames / bag_median, 3),
        "ratio": round(pipeline_median / bag_median, 4),
        "overhead_ms_per_frame": round(1000 * (bag_median - pipeline_median) / args.frames, 2),
        "tool_only_ms_per_frame": round(1000 * statistics.median(tool_s) / args.frames, 2),
        "target_ratio": 0.9,
        "rounds_s": {"pipeline": [round(s, 3) for s in pipeline_s], "bag": [round(s, 3) for s in bag_s]},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
