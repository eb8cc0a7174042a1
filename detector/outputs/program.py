"""``program_output``: pipe alerts to a shell command; ``keep_alive`` keeps one process."""

from __future__ import annotations

import subprocess
from typing import Any

from detector.outputs.base import Sink


class ProgramSink(Sink):
    """Runs ``sh -c program`` and writes one line per alert to its stdin."""

    name = "program"
    out_of_process = True

    def __init__(self, program: str, *, keep_alive: bool = False, buffered: bool = False) -> None:
        self.program = program
        self.keep_alive = keep_alive
        self.batches = keep_alive
        self.buffered = buffered
        self._proc: subprocess.Popen[bytes] | None = None

    def settings(self) -> dict[str, Any]:
        return {"program": self.program, "keep_alive": self.keep_alive,
                "buffered": self.buffered}

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["/bin/sh", "-c", self.program], stdin=subprocess.PIPE)

    def write(self, line: str, alert: Any) -> None:
        data = (line + "\n").encode()
        if not self.keep_alive:
            proc = self._spawn()
            proc.communicate(data)
            return
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._spawn()
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        if not self.buffered:
            self._proc.stdin.flush()

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        self.write("\n".join(line for line, _ in items), None)

    def reopen(self) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
