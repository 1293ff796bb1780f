"""Say a repeated message at most once per period (per distinct text), counting what was held back."""

from __future__ import annotations

import threading
import time


class MessageThrottle:
    """``admit(text)`` -> the number of identical texts suppressed since it was last said, or None to stay quiet."""

    MAX_TEXTS = 256  # distinct texts remembered before stale ones are forgotten

    def __init__(self, period_s: float = 5.0):
        self.period_s = period_s
        self._lock = threading.Lock()
        self._last_said: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def admit(self, text: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            last = self._last_said.get(text)
            if last is not None and now - last < self.period_s:
                self._suppressed[text] = self._suppressed.get(text, 0) + 1
                return None
            if len(self._last_said) >= self.MAX_TEXTS:
                self._forget_older_than(now - self.period_s)
            self._last_said[text] = now
            return self._suppressed.pop(text, 0)

    def _forget_older_than(self, cutoff: float) -> None:
        for text in [text for text, said in self._last_said.items() if said < cutoff]:
            del self._last_said[text]
            self._suppressed.pop(text, None)
