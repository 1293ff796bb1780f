"""Thread-safe counters and recent timings of the node, summarised for /diagnostics and the benchmark."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np


class NodeStats:
    """Counts events (``count``) and keeps the last ``window`` frame timings (``record_frame``).

    ``summary()`` returns totals, the publish rate since the previous summary, stamp-to-publish latency
    p50/p95 (ms) and the mean time of each processing stage (ms) over the window.
    """

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self._stage_ms: deque[dict[str, float]] = deque(maxlen=window)
        self._last_summary_time = time.monotonic()
        self._last_summary_published = 0

    def count(self, event: str, n: int = 1) -> None:
        with self._lock:
            self._counts[event] += n

    def record_frame(self, latency_ms: float, stage_ms: dict[str, float]) -> None:
        """One published frame: input-stamp-to-publish latency and per-stage wall times (ms)."""
        with self._lock:
            self._counts["published"] += 1
            self._latencies_ms.append(latency_ms)
            self._stage_ms.append(dict(stage_ms))

    def summary(self) -> dict[str, float]:
        with self._lock:
            now = time.monotonic()
            published = self._counts["published"]
            elapsed = max(now - self._last_summary_time, 1e-9)
            rate = (published - self._last_summary_published) / elapsed
            self._last_summary_time, self._last_summary_published = now, published
            result: dict[str, float] = dict(self._counts)
            result["rate_hz"] = rate
            if self._latencies_ms:
                latencies = np.asarray(self._latencies_ms)
                result["latency_p50_ms"] = float(np.percentile(latencies, 50))
                result["latency_p95_ms"] = float(np.percentile(latencies, 95))
            stages = {name for timing in self._stage_ms for name in timing}
            for stage in sorted(stages):
                values = [timing[stage] for timing in self._stage_ms if stage in timing]
                result[f"{stage}_ms"] = float(np.mean(values))
            return result
