"""Logging for the CLI, in falcoctl's formats: color, text or JSON lines, always on stderr.

JSON lines have pterm's shape, as falcoctl prints them: ``level`` (``INFO``, ``WARN``,
``ERROR``...), ``msg``, ``timestamp`` (``YYYY-MM-DD HH:MM:SS``) and any extra ``fields``.
Errors the CLI reports go through the same logger, so a JSON consumer reads one format.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from falcoctl_py.cli._context import LogFormat, LogLevel, styling_enabled

TRACE = 5
_LEVELS = {
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.debug: logging.DEBUG,
    LogLevel.trace: TRACE,
}
_NAMES = {TRACE: "TRACE", logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN",
          logging.ERROR: "ERROR", logging.CRITICAL: "FATAL"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def level_name(levelno: int) -> str:
    """falcoctl's name of a level (``WARN``, not ``WARNING``)."""
    return _NAMES.get(levelno, logging.getLevelName(levelno))


def json_line(levelno: int, msg: str, created: float, fields: object = None) -> str:
    """One log record as falcoctl's JSON line (keys sorted, as Go's encoder writes them)."""
    entry: dict[str, object] = dict(fields) if isinstance(fields, dict) else {}
    entry.update(level=level_name(levelno), msg=msg,
                 timestamp=time.strftime(TIME_FORMAT, time.localtime(created)))
    return json.dumps(entry, default=str, sort_keys=True, separators=(",", ":"))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: level, msg, timestamp and any extra ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and logging.getLogger().isEnabledFor(logging.DEBUG):
            msg = f"{msg}: {self.formatException(record.exc_info)}"
        return json_line(record.levelno, msg, record.created, getattr(record, "fields", None))


class TextFormatter(logging.Formatter):
    """``LEVEL message`` with falcoctl's level names; extra ``fields`` as ``key: value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{level_name(record.levelno):<5} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += "".join(f" {k}: {v}" for k, v in fields.items())
        if record.exc_info and logging.getLogger().isEnabledFor(logging.DEBUG):
            line += "\n" + self.formatException(record.exc_info)
        return line


class OnceFilter(logging.Filter):
    """Each warning once: a warning printed in the last few seconds, alone or after a
    ``where: `` prefix (the config loader's line, then the same text in a summary), is dropped.
    A warning that comes back later (a follower's next failed check) is printed again."""

    WINDOW = 5.0  # seconds

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        text, now = record.getMessage(), record.created
        if now - self._seen.get(text, float("-inf")) < self.WINDOW:
            return False
        if len(self._seen) > 1024:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.WINDOW}
        parts = text.split(": ")
        self._seen.update((": ".join(parts[i:]), now) for i in range(len(parts)))
        return True


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (never a closed stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        del value


_json_mode = False


def json_status(message: str) -> bool:
    """With ``--log-format json``: print ``message`` as a JSON INFO line and return True."""
    if _json_mode:
        print(json_line(logging.INFO, message, time.time()), file=sys.stderr, flush=True)
    return _json_mode


def setup_logging(fmt: LogFormat, level: LogLevel, *, disable_styling: bool = False) -> None:
    """Configure the root logger for this process (again when a later flag changes it)."""
    global _json_mode
    _json_mode = fmt is LogFormat.json
    logging.addLevelName(TRACE, "TRACE")
    handler: logging.Handler
    if fmt is LogFormat.color and styling_enabled(fmt, disable_styling=disable_styling):
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
    else:
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter() if fmt is LogFormat.json else TextFormatter())
    handler.addFilter(OnceFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # Library warnings (``warnings.warn``) go through the same handler: one format, once each.
    logging.captureWarnings(True)
    # httpx's per-request lines show at debug only: falcoctl_py.http's filter, the one place.
