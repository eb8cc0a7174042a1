"""Logging set-up for the CLI: color (rich), text or json lines, always on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

from falcoctl_py.cli._context import LogFormat, LogLevel

TRACE = 5
_LEVELS = {
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.debug: logging.DEBUG,
    LogLevel.trace: TRACE,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, msg and any extra ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        return json.dumps(entry, default=str)


def setup_logging(fmt: LogFormat, level: LogLevel) -> None:
    """Configure the root logger once for this process."""
    logging.addLevelName(TRACE, "TRACE")
    handler: logging.Handler
    if fmt is LogFormat.json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif fmt is LogFormat.color and sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # httpx and httpcore log every request at INFO: only worth seeing when debugging.
    chatty = logging.DEBUG if level in (LogLevel.debug, LogLevel.trace) else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(chatty)
