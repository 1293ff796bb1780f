"""Match messages of several input topics by header stamp (our own replacement for message_filters).

The first stream is the pivot (the colour image): a match is the newest pivot message for which every other
stream holds a message whose stamp is within ``tolerance_ns`` of it. Pivot messages older than a match, or
pushed out of a full queue, are discarded and counted as ``dropped``: the node always works on the latest frame.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any


class StampSynchronizer:
    """Thread-safe stamp matcher. ``add(stream, stamp_ns, msg)`` returns {stream: msg} on a match, else None."""

    def __init__(self, streams: Sequence[str], tolerance_ns: int, queue_size: int):
        if not streams:
            raise ValueError("StampSynchronizer needs at least one stream")
        if tolerance_ns < 0 or queue_size < 1:
            raise ValueError(f"tolerance_ns must be >= 0 and queue_size >= 1, got {tolerance_ns}, {queue_size}")
        self.streams = tuple(streams)
        self.tolerance_ns = int(tolerance_ns)
        self._queues: dict[str, deque[tuple[int, Any]]] = {name: deque() for name in self.streams}
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self.dropped = 0  # pivot messages discarded without a match

    def add(self, stream: str, stamp_ns: int, msg: Any) -> dict[str, Any] | None:
        with self._lock:
            queue = self._queues[stream]
            if len(queue) == self._queue_size:
                queue.popleft()
                if stream == self.streams[0]:
                    self.dropped += 1
            queue.append((int(stamp_ns), msg))
            return self._match()

    def _match(self) -> dict[str, Any] | None:
        pivot_queue = self._queues[self.streams[0]]
        for pivot_index in range(len(pivot_queue) - 1, -1, -1):
            stamp, pivot_msg = pivot_queue[pivot_index]
            partners = {name: self._closest(self._queues[name], stamp) for name in self.streams[1:]}
            if any(partner is None for partner in partners.values()):
                continue
            self.dropped += pivot_index  # older pivot messages can no longer be the latest frame
            for _ in range(pivot_index + 1):
                pivot_queue.popleft()
            matched = {self.streams[0]: pivot_msg}
            for name, (partner_stamp, partner_msg) in partners.items():
                queue = self._queues[name]
                while queue and queue[0][0] <= partner_stamp:
                    queue.popleft()
                matched[name] = partner_msg
            return matched
        return None

    def _closest(self, queue: deque[tuple[int, Any]], stamp: int) -> tuple[int, Any] | None:
        """The entry of ``queue`` nearest to ``stamp`` if it is within the tolerance."""
        best = min(queue, key=lambda entry: abs(entry[0] - stamp), default=None)
        if best is None or abs(best[0] - stamp) > self.tolerance_ns:
            return None
        return best
