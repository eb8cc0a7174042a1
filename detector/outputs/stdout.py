"""``stdout_output``: one alert per line on standard output."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from detector.outputs.base import Sink


class StdoutSink(Sink):
    """Writes ``line + "\\n"``; flushes each alert unless ``buffered_outputs``."""

    name = "stdout"
    batches = True

    def __init__(self, *, buffered: bool = False, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._buffered = buffered

    def write(self, line: str, alert: Any) -> None:
        self._stream.write(line + "\n")
        if not self._buffered:
            self._stream.flush()

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        self._stream.write("".join(line + "\n" for line, _ in items))
        if not self._buffered:
            self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
