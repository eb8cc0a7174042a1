"""Falco's ``syscall_event_drops``: the sources' counters summed into the metrics, and the
rate-limited drop notification (log, alert, exit) when the share of dropped events passes the
threshold."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from detector.config import FalcoConfig
from detector.metrics import Metrics

log = logging.getLogger("detector.runtime")

DROP_RULE = "Falco internal: syscall event drop"


class TokenBucket:
    """Falco's rate limiter for drop notifications (rate per second, max burst)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, max(1, burst)
        self.tokens = float(self.burst)
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def source_counts(source: object) -> tuple[int | None, int | None]:
    """(events seen, events dropped) as the source counts them, if it does."""
    from detector.runtime.protocols import CountingSource

    if not isinstance(source, CountingSource):
        return None, None
    stats = source.stats()
    n_evts = stats.get("n_evts")
    n_drops = stats.get("n_drops", stats.get("n_drops_buffer"))
    return (None if n_evts is None else int(n_evts)), (None if n_drops is None else int(n_drops))


Emit = Callable[[str, str, str, dict[str, Any]], None]


class DropWatch:
    """Keeps the metrics' event and drop counts and acts on drops as configured."""

    # ``emit(rule, priority, message, fields)`` raises the alert, ``stop()`` is the exit action.

    def __init__(self, config: FalcoConfig, metrics: Metrics, *, emit: Emit,
                 stop: Callable[[], None]) -> None:
        drops = config.syscall_event_drops
        self.actions = list(drops.actions)
        self.threshold = drops.threshold
        self.bucket = TokenBucket(drops.rate, drops.max_burst)
        self._ebpf = config.engine_kind == "ebpf"
        self._metrics, self._emit, self._stop = metrics, emit, stop
        self._last = (0, 0)

    def update(self, sources: Iterable[object], *, check_drops: bool) -> None:
        """Sum the sources' counters into the metrics; with ``check_drops``, act on new drops."""
        total_evts = total_drops = 0
        known = False
        for s in sources:
            n_evts, n_drops = source_counts(s)
            if n_evts is not None:
                known = True
                total_evts += n_evts
                total_drops += n_drops or 0
        m = self._metrics
        m.n_evts = total_evts if known else m.processed
        m.n_drops = m.n_drops_buffer = total_drops
        if not check_drops:
            return
        d_evts = m.n_evts - self._last[0]
        d_drops = m.n_drops - self._last[1]
        self._last = (m.n_evts, m.n_drops)
        if d_drops <= 0 or "ignore" in self.actions:
            return
        ratio = 100.0 * d_drops / max(1, d_evts + d_drops)
        if ratio <= self.threshold or not self.bucket.take():
            return
        msg = f"{DROP_RULE}. {d_drops} system calls dropped in last second."
        if "log" in self.actions:
            log.warning("%s", msg)
        if "alert" in self.actions:
            self._emit(DROP_RULE, "Debug", msg, {
                "n_evts": d_evts, "n_drops": d_drops, "n_drops_buffer_total": d_drops,
                "ebpf_enabled": 1 if self._ebpf else 0,
            })
        if "exit" in self.actions:
            log.error("syscall_event_drops.actions has exit: stopping")
            self._stop()
