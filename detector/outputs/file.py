"""``file_output``: append alerts to a file; ``keep_alive`` keeps it open, SIGUSR1 reopens it."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from detector.outputs.base import Sink


class FileSink(Sink):
    """Appends one line per alert. Without keep_alive the file is opened for every alert."""

    name = "file"
    batches = True

    def __init__(self, filename: str, *, keep_alive: bool = False, buffered: bool = False) -> None:
        self.path = Path(filename)
        self.keep_alive = keep_alive
        self.buffered = buffered
        self._fh: IO[str] | None = None

    def _open(self) -> IO[str]:
        return open(self.path, "a", encoding="utf-8")

    def write(self, line: str, alert: Any) -> None:
        if not self.keep_alive:
            with self._open() as fh:
                fh.write(line + "\n")
            return
        if self._fh is None:
            self._fh = self._open()
        self._fh.write(line + "\n")
        if not self.buffered:
            self._fh.flush()

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        text = "".join(line + "\n" for line, _ in items)
        if not self.keep_alive:
            with self._open() as fh:
                fh.write(text)
            return
        if self._fh is None:
            self._fh = self._open()
        self._fh.write(text)
        if not self.buffered:
            self._fh.flush()

    def reopen(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
