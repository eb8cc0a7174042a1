"""Alert rendering for the sinks: Falco's text line and Falco's JSON alert, plus internal alerts.

The rules engine's ``Alert`` (detector.rules.engine) and :class:`InternalAlert` share the
attributes used here: ``time`` (ns since the epoch), ``rule``, ``priority``, ``source``, ``tags``,
``output`` (the text line with its time and priority prefix), ``output_fields``, ``hostname``.
"""

from __future__ import annotations

import json
import os
import socket
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

PRIORITY_NAMES = (
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug",
)
_BY_LOWER = {p.lower(): p for p in PRIORITY_NAMES} | {"info": "Informational"}


class AlertLike(Protocol):
    """What an alert offers to the outputs (read-only)."""

    @property
    def time(self) -> Any: ...
    @property
    def rule(self) -> str: ...
    @property
    def priority(self) -> Any: ...
    @property
    def source(self) -> str: ...
    @property
    def tags(self) -> Any: ...
    @property
    def output(self) -> str: ...
    @property
    def output_fields(self) -> Any: ...
    @property
    def hostname(self) -> str: ...


def hostname() -> str:
    """``FALCO_HOSTNAME`` or the host's name, as Falco puts in alerts."""
    return os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


def priority_name(priority: Any) -> str:
    """Falco's capitalised priority name from a string, an enum or a level number."""
    if isinstance(priority, int) and 0 <= priority < len(PRIORITY_NAMES):
        return PRIORITY_NAMES[priority]
    text = str(getattr(priority, "name", priority)).split(".")[-1].lower()
    return _BY_LOWER.get(text, str(priority))


def priority_level(priority: Any) -> int:
    """0 (Emergency) .. 7 (Debug): the syslog severity."""
    return PRIORITY_NAMES.index(priority_name(priority)) if priority_name(
        priority) in PRIORITY_NAMES else 7


def _time_ns(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value * 1e9) if value < 1e12 else int(value)
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    if isinstance(value, str):
        return iso_to_ns(value)
    return _time.time_ns()


def iso_to_ns(text: str) -> int:
    base, _, frac = text.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(base).replace(tzinfo=UTC).timestamp())
    return secs * 1_000_000_000 + int((frac + "000000000")[:9] or 0)


def iso_utc(ns: int) -> str:
    """``2025-04-02T15:15:03.434319636Z``: the JSON alert's ``time``."""
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def text_time(ns: int, *, iso: bool) -> str:
    """Falco's ``%evt.time`` (local HH:MM:SS.ns) or ``%evt.time.iso8601`` prefix."""
    secs, frac = divmod(ns, 1_000_000_000)
    if iso:
        return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}+0000"
    return _time.strftime("%H:%M:%S", _time.localtime(secs)) + f".{frac:09d}"


@dataclass(slots=True)
class InternalAlert:
    """A Falco internal message (drops, hot restart failure, metrics): source ``internal``."""

    time: int
    rule: str
    priority: str
    output: str
    output_fields: dict[str, Any]
    source: str = "internal"
    tags: list[str] = field(default_factory=list)
    hostname: str = field(default_factory=hostname)


def internal_alert(
    rule: str, priority: str, message: str, fields: dict[str, Any] | None = None,
    *, iso: bool = False,
) -> InternalAlert:
    """Build an internal alert whose text is ``<time>: <Priority> <message> (k=v, ...)``."""
    now = _time.time_ns()
    fields = dict(fields or {})
    text = f"{text_time(now, iso=iso)}: {priority_name(priority)} {message}"
    if fields:
        text += " (" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"
    return InternalAlert(time=now, rule=rule, priority=priority_name(priority), output=text,
                         output_fields=fields)


@dataclass(frozen=True, slots=True)
class FormatOptions:
    """The falco.yaml keys that shape an alert line."""

    json_output: bool = False
    include_output: bool = True
    include_tags: bool = True
    include_output_fields: bool = True
    include_message: bool = False


def render(alert: AlertLike, opts: FormatOptions) -> str:
    """The line a sink writes: the text line, or Falco's JSON alert with sorted keys."""
    if not opts.json_output:
        return alert.output
    return json.dumps(to_json_dict(alert, opts), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=str)


def to_json_dict(alert: AlertLike, opts: FormatOptions = FormatOptions()) -> dict[str, Any]:
    """Falco's JSON alert as a dict (what Falcosidekick accepts)."""
    out: dict[str, Any] = {
        "hostname": getattr(alert, "hostname", "") or hostname(),
        "priority": priority_name(alert.priority),
        "rule": alert.rule,
        "source": alert.source,
        "time": iso_utc(_time_ns(alert.time)),
    }
    if opts.include_output:
        out["output"] = alert.output
    if opts.include_output_fields:
        out["output_fields"] = dict(alert.output_fields or {})
    if opts.include_tags and alert.source != "internal":
        out["tags"] = sorted(alert.tags or [])
    if opts.include_message:
        msg = getattr(alert, "message", None) or alert.output
        prefix_end = msg.find(": ") if msg is alert.output else -1
        if prefix_end >= 0:
            rest = msg[prefix_end + 2:]
            msg = rest.split(" ", 1)[1] if " " in rest else rest
        out["message"] = msg
    return out
