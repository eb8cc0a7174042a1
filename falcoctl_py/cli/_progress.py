"""Download progress: Rich bars on a terminal, plain log lines otherwise (always on stderr)."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Any

log = logging.getLogger("falcoctl_py.progress")


class DownloadProgress:
    """Implements the core's ``Progress`` protocol; use as a context manager."""

    def __init__(self, *, force_plain: bool = False) -> None:
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        if not force_plain and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )

    def __enter__(self) -> DownloadProgress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bars is not None:
            self._bars.stop()

    def start(self, key: str, label: str, total: int) -> None:
        if self._bars is not None:
            self._tasks[key] = self._bars.add_task(label, total=total or None)
        else:
            log.info("downloading %s (%d bytes)", label, total)

    def advance(self, key: str, amount: int) -> None:
        if self._bars is not None and key in self._tasks:
            self._bars.advance(self._tasks[key], amount)

    def finish(self, key: str, message: str) -> None:
        if self._bars is None:
            log.info("%s", message)
