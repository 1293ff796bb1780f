"""Background threads for pipelined batch tools: ``ReadAhead`` produces items ahead of the consumer and
``SerialWorker`` consumes calls behind the producer, so a tool reads and writes while its main thread infers.
Bounded queues, order kept, and every error re-raised in the main thread; leaving the block early stops the
thread before it returns, so nothing is left running.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

_POLL_S = 0.05  # how often a thread blocked on a full queue checks whether it should stop


class ReadAhead:
    """Iterates ``source`` on a background thread, up to ``depth`` items ahead of the consumer; a context manager.

    Iterating the object yields the source's items in order; an exception raised by the source is re-raised in
    the consumer after the items before it. Leaving the block early stops the thread (and closes the source).
    ``busy_s``: seconds the thread spent producing items.
    """

    def __init__(self, source: Iterable, depth: int, name: str = "read-ahead"):
        self._iterator = iter(source)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.busy_s = 0.0

    def __enter__(self) -> ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator:
        while True:
            done, item, error = self._queue.get()
            if error is not None:
                raise error
            if done:
                return
            yield item

    def _run(self) -> None:
        iterator = self._iterator
        try:
            while True:
                began = time.perf_counter()
                try:
                    entry = (False, next(iterator), None)
                except StopIteration:
                    entry = (True, None, None)
                except BaseException as error:  # noqa: BLE001 - handed to the consumer
                    entry = (True, None, error)
                self.busy_s += time.perf_counter() - began
                if not self._put(entry) or entry[0]:
                    return
        finally:
            getattr(iterator, "close", lambda: None)()

    def _put(self, entry) -> bool:
        """Queue ``entry`` unless the consumer has left; False when it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False


class SerialWorker:
    """Runs submitted calls one at a time, in order, on a background thread that owns ``resource``.

    A context manager: the thread enters ``resource`` (e.g. a file or database that must be used from one
    thread) before the first call and exits it after the last. At most ``depth`` calls wait; ``submit`` blocks
    when they are that many. The first exception of a call (or of entering or exiting the resource) is re-raised
    in the submitting thread by the next ``submit`` or when the block ends; the calls still waiting are dropped
    and the resource is exited with that exception. Leaving the block normally waits for every call; leaving
    it by an exception drops the waiting calls and exits the resource with that exception.
    ``busy_s``: seconds the thread spent working (resource enter and exit included).
    """

    def __init__(self, resource: AbstractContextManager, depth: int, name: str = "worker"):
        self._resource = resource
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort: BaseException | None = None  # the exception the block was left with
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.busy_s = 0.0

    def __enter__(self) -> SerialWorker:
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._abort = exc
        self._queue.put(None)  # the thread drains without working once aborted or failed: never blocks long
        self._thread.join()
        if exc is None and self._error is not None:
            raise self._error

    def submit(self, call: Callable, *args) -> None:
        """Queue ``call(*args)``; raises the error of an earlier call instead, if one failed."""
        if self._error is not None:
            raise self._error
        self._queue.put((call, *args))

    def _run(self) -> None:
        entered = self._timed(self._resource.__enter__)
        while (task := self._queue.get()) is not None:
            if entered and self._error is None and self._abort is None:
                self._timed(*task)
        if entered:
            failure = self._error or self._abort
            self._timed(
                self._resource.__exit__,
                type(failure) if failure else None,
                failure,
                getattr(failure, "__traceback__", None),
            )

    def _timed(self, call: Callable, *args) -> bool:
        """Run ``call(*args)`` and add its time to ``busy_s``; True if it returned, else its error is kept."""
        began = time.perf_counter()
        try:
            call(*args)
            return True
        except BaseException as error:  # noqa: BLE001 - re-raised in the submitting thread
            self._error = self._error or error
            return False
        finally:
            self.busy_s += time.perf_counter() - began
