"""Synthetic dataset generator throughput, with self-intersection rejection on; prints one JSON object.

    python benchmarks/bench_generator.py [--samples 64] [--views-per-subject 4]

Each worker count renders the same samples into a fresh temporary folder. ``samples_per_s_*`` is the wall rate
of the whole ``generate`` call including process start-up (spawn, anny build, EGL context); the 1-worker run
renders in this process after a warm-up, so its rate is the steady state. Timings depend on the load of the
machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--views-per-subject", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()

    from rgbd_fusion_core.synth.generate import GeneratorConfig, generate

    subjects = max(1, args.samples // args.views_per_subject)
    result = {
        "samples": subjects * args.views_per_subject,
        "views_per_subject": args.views_per_subject,
        "resolution": args.resolution,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = GeneratorConfig(
            out=Path(tmp) / "warmup", subjects=1, views_per_subject=1, resolution=args.resolution, seed=99
        )
        start = time.perf_counter()
        generate(base, progress=False)  # builds anny, compiles shaders, loads the collision kernel
        result["startup_s_in_process"] = round(time.perf_counter() - start, 2)
        for workers in (1, 2):
            config = GeneratorConfig(
                out=Path(tmp) / f"w{workers}",
                subjects=subjects,
                views_per_subject=args.views_per_subject,
                resolution=args.resolution,
                workers=workers,
                seed=1,
            )
            start = time.perf_counter()
            index = generate(config, progress=False)
            elapsed = time.perf_counter() - start
            result[f"samples_per_s_{workers}_worker{'s' if workers > 1 else ''}"] = round(
                len(index.samples) / elapsed, 2
            )
            result["rejection_rate"] = index.generator["rejection_rate"]
            result["pose_attempts_mean"] = index.generator["pose_attempts_mean"]
            files = [p for p in config.out.rglob("*") if p.is_file() and p.name != "dataset.json"]
            result["bytes_per_sample"] = int(sum(p.stat().st_size for p in files) / len(index.samples))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
