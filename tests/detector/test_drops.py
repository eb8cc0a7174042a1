"""Drop accounting and notification (``syscall_event_drops``), driven by a source's counters."""

from __future__ import annotations

from typing import Any

from detector.config import load_config
from detector.drops import DROP_RULE, DropWatch, TokenBucket, source_counts
from detector.metrics import Metrics


class Counted:
    """A source that reports its counters the way the eBPF feed does."""

    def __init__(self) -> None:
        self.n_evts = 0
        self.n_drops = 0

    def stats(self) -> dict[str, int]:
        return {"n_evts": self.n_evts, "n_drops": self.n_drops}


def _watch(*options: str) -> tuple[DropWatch, Metrics, list[tuple[Any, ...]], list[bool]]:
    metrics = Metrics()
    alerts: list[tuple[Any, ...]] = []
    stopped: list[bool] = []
    watch = DropWatch(load_config(overrides=list(options)), metrics,
                      emit=lambda *a: alerts.append(a), stop=lambda: stopped.append(True))
    return watch, metrics, alerts, stopped


def test_token_bucket_allows_the_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=0.0, burst=2)
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_source_counts_reads_stats_or_reports_none() -> None:
    src = Counted()
    src.n_evts, src.n_drops = 7, 2
    assert source_counts(src) == (7, 2)
    assert source_counts(object()) == (None, None)


def test_drops_over_the_threshold_alert_and_exit() -> None:
    watch, metrics, alerts, stopped = _watch("syscall_event_drops.actions=[log, alert, exit]",
                                             "syscall_event_drops.max_burst=1")
    src = Counted()
    src.n_evts = 100
    watch.update([src], check_drops=True)
    assert alerts == [] and not stopped and metrics.n_evts == 100
    src.n_evts, src.n_drops = 200, 50
    watch.update([src], check_drops=True)
    ((rule, priority, message, fields),) = alerts
    assert (rule, priority) == (DROP_RULE, "Debug") and "50 system calls dropped" in message
    assert fields["n_evts"] == 100 and fields["n_drops"] == 50
    assert stopped == [True] and metrics.n_drops == 50


def test_ignore_and_counting_only_raise_nothing() -> None:
    watch, metrics, alerts, _ = _watch("syscall_event_drops.actions=[ignore]")
    src = Counted()
    src.n_evts, src.n_drops = 10, 10
    watch.update([src], check_drops=True)
    watch, metrics, alerts2, _ = _watch()
    watch.update([src], check_drops=False)  # /metrics reads the counters: no notification
    assert alerts == alerts2 == [] and metrics.n_drops == 10
