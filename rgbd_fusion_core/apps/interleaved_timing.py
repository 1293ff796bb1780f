"""Timing workloads as ratios that hold on a busy machine: each workload is timed between two measurements of the
machine's fp32 matmul peak (``peak, w1, peak, w2, peak, ...``), and its share of the peak is taken against the
higher of its two neighbouring peak samples, so a load change moves both alike.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch


class MatmulPeak:
    """Best fp32 GFLOP/s of a ``size``-square matrix multiply over ``repeats`` calls, measured on demand."""

    def __init__(self, size: int = 2048, repeats: int = 3):
        self.size, self.repeats = size, repeats
        generator = torch.Generator().manual_seed(0)
        self.a = torch.randn(size, size, generator=generator)
        self.b = torch.randn(size, size, generator=generator)
        self.a @ self.b
        self.samples: list[float] = []

    def measure(self) -> float:
        best = float("inf")
        for _ in range(self.repeats):
            started = time.perf_counter()
            self.a @ self.b
            best = min(best, time.perf_counter() - started)
        gflops = 2 * self.size**3 / best / 1e9
        self.samples.append(gflops)
        return gflops


@dataclasses.dataclass
class Workload:
    """``call()`` runs the work once and may return a Pipeline result (its timings are collected); ``gflop``:
    the work of one call (None: no share of peak); ``iters``: calls per round (the round's median is kept)."""

    call: object
    gflop: float | None
    iters: int = 1
    ms: list = dataclasses.field(default_factory=list)  # per round: median ms of the round's calls
    peaks: list = dataclasses.field(default_factory=list)  # per round: the higher of the two neighbouring peaks
    steps: list = dataclasses.field(default_factory=list)  # per call: the Pipeline's timings_ms
    people_found: int | None = None


def run_interleaved(workloads: dict[str, Workload], peak: MatmulPeak, rounds: int) -> None:
    """peak, w1, peak, w2, peak, ... for ``rounds`` rounds (after one untimed warm-up call of each)."""
    for workload in workloads.values():
        workload.call()
    before = peak.measure()
    for _ in range(rounds):
        for workload in workloads.values():
            times = []
            for _ in range(workload.iters):
                started = time.perf_counter()
                result = workload.call()
                times.append(1000 * (time.perf_counter() - started))
                if hasattr(result, "timings_ms"):
                    workload.steps.append(dict(result.timings_ms))
                    workload.people_found = result.people_found
            after = peak.measure()
            workload.ms.append(statistics.median(times))
            workload.peaks.append(max(before, after))
            before = after


def shares(gflop: float, ms: list[float], peaks: list[float]) -> tuple[float, float]:
    """(min, median) over rounds of the share of the neighbouring peak achieved doing ``gflop`` in ``ms``."""
    per_round = [gflop / (m / 1000) / p for m, p in zip(ms, peaks)]
    return min(per_round), statistics.median(per_round)
