"""A sink behind a bounded queue and its own worker thread: outputs never block detection."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("detector.outputs")

DEFAULT_CAPACITY = 10_000


class Sink:
    """Where alert lines go. ``write`` runs on the sink's own worker thread."""

    name = "sink"

    def write(self, line: str, alert: Any) -> None:
        raise NotImplementedError

    def reopen(self) -> None:
        """SIGUSR1: reopen files, respawn programs."""

    def close(self) -> None:
        """Flush and release."""


@dataclass(slots=True)
class SinkStats:
    """Counters of one sink."""

    name: str
    sent: int = 0
    dropped: int = 0
    errors: int = 0
    queued: int = 0


_STOP = object()
_REOPEN = object()


class QueuedSink:
    """A bounded queue in front of a sink; ``put`` never blocks and counts drops when full."""

    def __init__(self, sink: Sink, capacity: int = DEFAULT_CAPACITY) -> None:
        self.sink = sink
        self.stats = SinkStats(name=sink.name)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity if capacity > 0
                                                    else DEFAULT_CAPACITY)
        self._thread = threading.Thread(target=self._work, name=f"output-{sink.name}",
                                        daemon=True)
        self._thread.start()

    def put(self, line: str, alert: Any) -> bool:
        try:
            self._queue.put_nowait((line, alert))
            return True
        except queue.Full:
            self.stats.dropped += 1
            return False

    def request_reopen(self) -> None:
        try:
            self._queue.put_nowait(_REOPEN)
        except queue.Full:
            log.warning("output %s: queue full, reopen request dropped", self.sink.name)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            try:
                if item is _REOPEN:
                    self.sink.reopen()
                else:
                    self.sink.write(*item)
                    self.stats.sent += 1
            except Exception as err:  # a sink's failure must not kill its worker
                self.stats.errors += 1
                log.warning("output %s failed: %s", self.sink.name, err)
        try:
            self.sink.close()
        except Exception as err:
            log.warning("output %s: close failed: %s", self.sink.name, err)

    def depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float) -> None:
        """Drain what is queued (up to ``timeout`` seconds), then close the sink."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("output %s: still blocked at shutdown, %d alerts not delivered",
                        self.sink.name, self._queue.qsize())
            return
        self._thread.join(timeout)
