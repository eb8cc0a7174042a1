"""A sink behind a bounded queue and its own worker thread: outputs never block detection."""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("detector.outputs")

DEFAULT_CAPACITY = 10_000


class Sink:
    """Where alert lines go. ``write`` runs on the sink's own worker thread."""

    name = "sink"
    batches = False  # True when write_batch writes several alerts in one go

    def write(self, line: str, alert: Any) -> None:
        raise NotImplementedError

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        """Several alerts at once (sinks that can, write them in one go)."""
        for line, alert in items:
            self.write(line, alert)

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
_BATCH = 512


class QueuedSink:
    """A bounded queue in front of a sink; ``put`` never blocks and counts drops when full.

    The queue is a deque (appends and pops are atomic) and the worker is woken only when it
    sleeps, then takes what is queued in batches: the event loop pays an append per alert.
    """

    def __init__(self, sink: Sink, capacity: int = DEFAULT_CAPACITY) -> None:
        self.sink = sink
        self.stats = SinkStats(name=sink.name)
        self.capacity = capacity if capacity > 0 else DEFAULT_CAPACITY
        self._dq: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._idle = False
        self._thread = threading.Thread(target=self._work, name=f"output-{sink.name}",
                                        daemon=True)
        self._thread.start()

    def put(self, line: str, alert: Any) -> bool:
        if len(self._dq) >= self.capacity:
            self.stats.dropped += 1
            return False
        self._dq.append((line, alert))
        if self._idle:
            self._wake.set()
        return True

    def _control(self, item: object) -> None:
        self._dq.append(item)
        self._wake.set()

    def request_reopen(self) -> None:
        self._control(_REOPEN)

    def _work(self) -> None:
        dq = self._dq
        while True:
            if not dq:
                self._idle = True
                if not dq:
                    self._wake.wait(0.2)
                self._wake.clear()
                self._idle = False
                continue
            batch: list[tuple[str, Any]] = []
            while dq and len(batch) < _BATCH:
                item = dq.popleft()
                if item is _STOP or item is _REOPEN:
                    self._flush(batch)
                    batch = []
                    if item is _STOP:
                        self._close_sink()
                        return
                    self._safely(self.sink.reopen)
                    continue
                batch.append(item)
            self._flush(batch)

    def _flush(self, batch: list[tuple[str, Any]]) -> None:
        if not batch:
            return
        if self.sink.batches:
            try:
                self.sink.write_batch(batch)
                self.stats.sent += len(batch)
            except Exception as err:  # a sink's failure must not kill its worker
                self.stats.errors += len(batch)
                log.warning("output %s failed: %s", self.sink.name, err)
            return
        for line, alert in batch:
            try:
                self.sink.write(line, alert)
                self.stats.sent += 1
            except Exception as err:
                self.stats.errors += 1
                log.warning("output %s failed: %s", self.sink.name, err)

    def _safely(self, fn: Any) -> None:
        try:
            fn()
        except Exception as err:
            self.stats.errors += 1
            log.warning("output %s failed: %s", self.sink.name, err)

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception as err:
            log.warning("output %s: close failed: %s", self.sink.name, err)

    def depth(self) -> int:
        return len(self._dq)

    def close(self, timeout: float) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then close the sink."""
        self._control(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("output %s: still blocked at shutdown, %d alerts not delivered",
                        self.sink.name, len(self._dq))
