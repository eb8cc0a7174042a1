"""The running detector: :class:`Runtime` composes the running rules, the event loop, the
reloader, the alert router and the services (web server, watcher, follower)."""

from __future__ import annotations

from detector.runtime.core import HOT_RESTART_FAILURE, SWITCH_INTERVAL, RunResult, Runtime
from detector.runtime.loop import METRICS_RULE

__all__ = ["HOT_RESTART_FAILURE", "METRICS_RULE", "SWITCH_INTERVAL", "RunResult", "Runtime"]
