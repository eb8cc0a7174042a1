"""Counters of a running detector and their Prometheus text, with Falco's metric names."""

from __future__ import annotations

import hashlib
import os
import re
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detector.outputs import OutputsStats

_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes ("" when unreadable)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _esc(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass(slots=True)
class Metrics:
    """What /metrics exposes; written by the event loop and the reloader."""

    falco_version: str = ""
    start_ns: int = field(default_factory=time.time_ns)
    n_evts: int = 0  # events the source saw (the kernel's count when it has one)
    n_drops_buffer: int = 0  # ring buffer drops counted by the source
    n_drops: int = 0
    processed: int = 0  # the source's events fully processed: state kept and rules evaluated
    async_events: int = 0  # events userspace made (``container``), processed but not counted above
    matches: Counter[tuple[str, int, str, tuple[str, ...]]] = field(default_factory=Counter)
    reloads_ok: int = 0
    reloads_failed: int = 0
    reload_ns: int = 0
    rules_files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    config_files: dict[str, str] = field(default_factory=dict)
    outputs: Callable[[], OutputsStats] | None = None  # the outputs' counters, read on demand

    def count_match(self, rule: str, priority: int, source: str, tags: Any) -> None:
        self.matches[(rule, priority, source, tuple(sorted(tags or ())))] += 1

    def prometheus(self) -> str:
        """The Prometheus text exposition."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {value}")

        metric("falcosecurity_falco_version_info", "gauge", "Falco version compatibility.",
               [(f'{{version="{_esc(self.falco_version)}"}}', 1)])
        metric("falcosecurity_falco_start_timestamp_nanoseconds", "gauge", "Start time.",
               [("", self.start_ns)])
        metric("falcosecurity_falco_duration_seconds_total", "counter", "Seconds running.",
               [("", int((time.time_ns() - self.start_ns) / 1e9))])
        metric("falcosecurity_scap_n_evts_total", "counter", "Events the source received.",
               [('{raw_name="n_evts"}', self.n_evts)])
        metric("falcosecurity_scap_n_drops_buffer_total", "counter",
               "Events dropped because the ring buffer was full.",
               [('{raw_name="n_drops_buffer"}', self.n_drops_buffer)])
        metric("falcosecurity_scap_n_drops_total", "counter", "Events dropped in total.",
               [('{raw_name="n_drops"}', self.n_drops)])
        metric("falcosecurity_falco_events_processed_total", "counter",
               "Events fully processed: state updated and rules evaluated.",
               [("", self.processed)])
        samples = []
        for (rule, prio, source, tags), n in sorted(self.matches.items()):
            tag_labels = "".join(f',tag_{_LABEL_NAME.sub("_", t)}="true"' for t in tags)
            samples.append((f'{{priority="{prio}",rule_name="{_esc(rule)}",'
                            f'source="{_esc(source)}"{tag_labels}}}', n))
        metric("falcosecurity_falco_rules_matches_total", "counter", "Alerts per rule.", samples)
        stats = self.outputs() if callable(self.outputs) else None
        metric("falcosecurity_falco_outputs_queue_num_drops_total", "counter",
               "Alerts dropped because an output queue was full.",
               [("", stats.dropped if stats else 0)])
        if stats is not None:
            metric("falcosecurity_falco_outputs_sent_total", "counter",
                   "Alerts delivered per output.",
                   [(f'{{output="{s.name}"}}', s.sent) for s in stats.sinks])
            metric("falcosecurity_falco_outputs_errors_total", "counter",
                   "Alerts an output failed to deliver.",
                   [(f'{{output="{s.name}"}}', s.errors) for s in stats.sinks])
        metric("falcosecurity_falco_reload_timestamp_nanoseconds", "gauge",
               "Time of the last rules (re)load.", [("", self.reload_ns)])
        metric("falcosecurity_falco_rules_reloads_total", "counter", "Rules reloads by result.",
               [('{result="ok"}', self.reloads_ok), ('{result="failed"}', self.reloads_failed)])
        metric("falcosecurity_falco_sha256_rules_files_info", "gauge", "Loaded rules files.",
               [(f'{{file_name="{_esc(p)}",sha256="{h}"}}', 1)
                for p, h in sorted(self.rules_files.items())])
        metric("falcosecurity_falco_sha256_config_files_info", "gauge", "Loaded config files.",
               [(f'{{file_name="{_esc(p)}",sha256="{h}"}}', 1)
                for p, h in sorted(self.config_files.items())])
        rss = _rss_bytes()
        metric("falcosecurity_falco_memory_rss_bytes", "gauge", "Resident memory.", [("", rss)])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        metric("falcosecurity_falco_cpu_seconds_total", "counter", "CPU time used.",
               [("", round(usage.ru_utime + usage.ru_stime, 3))])
        return "\n".join(lines) + "\n"


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
