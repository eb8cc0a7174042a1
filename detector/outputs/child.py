"""The child process of a sink: ``python -m detector.outputs.child READ_FD SHARED_FD``.

Its settings come as JSON on stdin: the sink's name and ``settings()``, the detector's pid.
Reads frames (see detector.outputs.process) from the pipe, writes them through the same Sink
as in-process outputs, in batches, and keeps its counters in the shared memory file. It exits
when the pipe closes (after delivering what is left) or at once when the detector dies.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from detector.outputs.base import Sink, SinkStats, deliver
from detector.outputs.process import (
    CONSUMED,
    ERRORS,
    HEAD,
    NUDGE_LEVEL,
    REOPEN,
    SENT,
    SHARED_SIZE,
    words,
)

log = logging.getLogger("detector.outputs")

_BATCH = 512
_READ = 64 * 1024


@dataclass(slots=True)
class FrameAlert:
    """What a frame carries besides the line: the syslog severity 0..7."""

    priority: int


def build_sink(name: str, settings: dict[str, Any]) -> Sink:
    """The sink named ``name``, rebuilt from its ``settings()``."""
    if name == "http":
        from detector.outputs.http import HttpSink
        return HttpSink(**settings)
    if name == "syslog":
        from detector.outputs.syslog import SyslogSink
        return SyslogSink(**settings)
    if name == "program":
        from detector.outputs.program import ProgramSink
        return ProgramSink(**settings)
    raise ValueError(f"no out-of-process sink named {name!r}")


def _watch_parent(parent: int) -> None:
    """Exit at once when the detector dies, even while a write is blocked: blocked on a pidfd
    of the detector (readable when it exits), else looking once a second."""
    try:
        pidfd = os.pidfd_open(parent)
    except (OSError, AttributeError):
        pidfd = -1
    while os.getppid() == parent:  # checked after the open: the pid was not reused before it
        if pidfd >= 0:
            select.select([pidfd], [], [])
        else:
            time.sleep(1.0)
    os._exit(0)


def parse_frames(buf: bytearray, limit: int) -> list[tuple[str, Any]]:
    """Up to ``limit`` complete frames taken off the front of ``buf``."""
    items: list[tuple[str, Any]] = []
    pos = 0
    while len(items) < limit and len(buf) - pos >= HEAD.size:
        size, level = HEAD.unpack_from(buf, pos)
        end = pos + HEAD.size + size
        if end > len(buf):
            break
        if level != NUDGE_LEVEL:  # a nudge only woke us up (to look at REOPEN)
            items.append((buf[pos + HEAD.size:end].decode("utf-8", "replace"),
                          FrameAlert(level)))  # fmt: skip
        pos = end
    del buf[:pos]
    return items


def serve(rfd: int, shared: memoryview, sink: Sink) -> None:
    """Deliver frames until the pipe is closed."""
    stats = SinkStats(name=sink.name)
    reopens = shared[REOPEN]
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    buf = bytearray()
    consumed = 0
    eof = False
    while True:
        items = parse_frames(buf, _BATCH)
        if not items:
            if eof:
                return
            if poller.poll():  # idle: blocks (a reopen request comes with a NUDGE frame)
                chunk = os.read(rfd, _READ)
                consumed += len(chunk)
                shared[CONSUMED] = consumed  # the parent's free space
                eof = not chunk
                buf += chunk
                items = parse_frames(buf, _BATCH)
        wanted = shared[REOPEN]
        if wanted != reopens:
            reopens = wanted
            try:
                sink.reopen()
            except Exception as err:
                stats.errors += 1
                log.warning("output %s: reopen failed: %s", sink.name, err)
        if items:
            deliver(sink, items, stats)
        shared[SENT], shared[ERRORS] = stats.sent, stats.errors


def main(argv: list[str]) -> int:
    rfd, shared_fd, spec = int(argv[0]), int(argv[1]), json.loads(sys.stdin.buffer.read())
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)  # the detector stops and reopens us through the pipe
    logging.basicConfig(level=int(spec.get("log_level", logging.WARNING)), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_watch_parent, args=(int(spec["parent"]),), daemon=True).start()
    shared = words(mmap.mmap(shared_fd, SHARED_SIZE))
    os.close(shared_fd)
    sink = build_sink(str(spec["sink"]), dict(spec["settings"]))
    try:
        serve(rfd, shared, sink)
    finally:
        try:
            sink.close()
        except Exception as err:
            log.warning("output %s: close failed: %s", sink.name, err)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
