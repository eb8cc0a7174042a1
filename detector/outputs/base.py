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
    out_of_process = False  # True: runs in a child process (detector.outputs.child)

    def settings(self) -> dict[str, Any]:
        """The JSON-safe keyword arguments that rebuild this sink in a child process."""
        raise NotImplementedError

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


def deliver(sink: Sink, batch: list[tuple[str, Any]], stats: SinkStats) -> None:
    """Write a batch through ``sink``, counting sent and failed alerts; never raises."""
    if not batch:
        return
    if sink.batches:
        try:
            sink.write_batch(batch)
            stats.sent += len(batch)
        except Exception as err:  # a sink's failure must not kill its worker
            stats.errors += len(batch)
            log.warning("output %s failed: %s", sink.name, err)
        return
    for line, alert in batch:
        try:
            sink.write(line, alert)
            stats.sent += 1
        except Exception as err:
            stats.errors += 1
            log.warning("output %s failed: %s", sink.name, err)


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
                if not dq:  # ``put`` sees ``_idle`` and sets ``_wake``: no timer needed
                    self._wake.wait()
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
        deliver(self.sink, batch, self.stats)

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

    def snapshot(self) -> SinkStats:
        """The counters now."""
        st = self.stats
        return SinkStats(st.name, st.sent, st.dropped, st.errors, self.depth())

    def stop(self) -> None:
        """Ask the worker to deliver what is queued, then close the sink (does not wait)."""
        self._control(_STOP)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for ``stop`` to complete."""
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            log.warning("output %s: still blocked at shutdown, %d alerts not delivered",
                        self.sink.name, len(self._dq))

    def close(self, timeout: float) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then close the sink."""
        self.stop()
        self.join(timeout)
