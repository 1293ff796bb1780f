"""A worker thread that always processes the most recent item: a new item replaces one still waiting.

Subscription callbacks only ``submit``; the slow work (conversion, inference, publishing) runs on this thread,
so the executor is never blocked. Items replaced before they were started are counted in ``dropped``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestItemWorker:
    """Runs ``process(item)`` on its own thread for the latest submitted item; exceptions go to ``on_error``."""

    def __init__(self, process: Callable[[Any], None], on_error: Callable[[BaseException], None], name: str = "worker"):
        self._process = process
        self._on_error = on_error
        self._condition = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Queue ``item`` for processing, replacing (and counting as dropped) an item not yet started."""
        with self._condition:
            if self._has_pending:
                self.dropped += 1
            self._pending, self._has_pending = item, True
            self._condition.notify()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Finish the item in progress (a waiting one is discarded) and end the thread; True if it ended."""
        with self._condition:
            self._stopping = True
            self._pending, self._has_pending = None, False
            self._condition.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._has_pending or self._stopping)
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
            try:
                self._process(item)
            except Exception as error:  # noqa: BLE001 - a bad frame must not end the worker
                self._on_error(error)
