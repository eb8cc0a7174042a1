"""The event loop: source -> state -> plugins' parsing -> rules -> outputs, with a
once-a-second tick for the drop counters and Falco's ``metrics.output_rule`` snapshot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from detector.drops import DropWatch
from detector.events import Event
from detector.metrics import Metrics
from detector.outputs.format import priority_level
from detector.runtime.active import ActiveRules
from detector.runtime.alerts import AlertRouter
from detector.runtime.protocols import CaptureSink, DrainingSource, EventSource, StateTracker

METRICS_RULE = "Falco internal: metrics snapshot"

# Events userspace makes (the state tracker's ``container`` event, Falco's container plugin's
# async event): the kernel never offered them, so they are not among the source's ``n_evts``
# and are counted apart from ``processed``, which stays "kernel events fully processed".
USERSPACE_EVENTS = frozenset({"container"})


class EventLoop:
    """Drives events through the running rules; several sources may share it (with a lock)."""

    def __init__(self, *, rules: ActiveRules, metrics: Metrics, alerts: AlertRouter,
                 drops: DropWatch, sources: list[EventSource], stopping: threading.Event,
                 snapshot_every: float = 0.0) -> None:
        self.rules = rules
        self.metrics = metrics
        self.router = alerts
        self.drops = drops
        self.sources = sources
        self.stopping = stopping
        self.lock: threading.Lock | None = None  # set when more than one source runs
        self.parse: Callable[[Event], None] | None = None  # plugins' parse step, if any
        self.alerts = 0
        self.snapshot_every = snapshot_every
        self._next_snapshot = time.monotonic() + snapshot_every
        self._last_tick = time.monotonic()

    def run(self, events: Iterable[Event | None], tracker: StateTracker | None,
            capture: CaptureSink | None) -> None:
        """Process ``events`` until they end (or, for a source that does not drain, a stop)."""
        metrics = self.metrics
        count = metrics.count_match
        rules = self.rules
        lock = self.lock
        stopping = self.stopping
        emit = self.router.emit
        parse = self.parse
        drains = isinstance(events, DrainingSource) and events.drains_on_stop
        n = 0
        for ev in events:
            if ev is None:  # the source's idle heartbeat
                if not drains and stopping.is_set():
                    break
                self.tick()
                continue
            if not drains and stopping.is_set():
                break
            if tracker is not None:
                ev = tracker.process(ev)
            if capture is not None:
                capture.write(ev)
            if lock is not None:
                with lock:
                    if parse is not None:
                        parse(ev)
                    alerts = rules.process(ev)
            else:
                if parse is not None:
                    parse(ev)
                alerts = rules.process(ev)
            if alerts:
                for alert in alerts:
                    self.alerts += 1
                    count(alert.rule, priority_level(alert.priority), alert.source, alert.tags)
                    emit(alert)
            if ev.type in USERSPACE_EVENTS:
                metrics.async_events += 1
            else:
                metrics.processed += 1
            n += 1
            if not n & 1023:
                self.tick()

    def tick(self) -> None:
        """Once a second: drop counters and actions; the metrics snapshot when it is due."""
        now = time.monotonic()
        if now - self._last_tick < 1.0:
            return
        self._last_tick = now
        self.drops.update(self.sources, check_drops=True)
        if self.snapshot_every and now >= self._next_snapshot:
            self._next_snapshot = now + self.snapshot_every
            self.snapshot()

    def snapshot(self) -> None:
        """Falco's ``metrics.output_rule``: an Informational internal alert with the counters."""
        m = self.metrics
        outputs = self.router.outputs
        out = outputs.stats() if outputs is not None else None
        self.router.internal(METRICS_RULE, "Informational", METRICS_RULE, {
            "scap.n_evts": m.n_evts, "scap.n_drops": m.n_drops,
            "scap.n_drops_buffer_total": m.n_drops_buffer,
            "falco.n_evts_processed": m.processed, "falco.num_alerts": self.alerts,
            "falco.outputs_queue_num_drops": out.dropped if out else 0,
            "falco.reloads": m.reloads_ok, "falco.reload_failures": m.reloads_failed,
        })
