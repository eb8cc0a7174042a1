"""Idle outputs sleep without a timer: the queue's worker thread and the child process of an
out-of-process output (and its watch on the detector) wake only for work, yet still deliver
alerts and reopen requests (SIGUSR1) that come while they sleep."""

from __future__ import annotations

import os
from pathlib import Path

from detector.outputs import Outputs
from detector.outputs.base import QueuedSink
from detector.outputs.file import FileSink
from detector.outputs.format import FormatOptions, InternalAlert
from detector.outputs.process import ProcessSink
from detector.outputs.program import ProgramSink
from tests.detector.quiet_parts import wakeups
from tests.eventually import eventually


def _alert(i: int) -> InternalAlert:
    return InternalAlert(time=1_700_000_000_000_000_000 + i, rule="r", priority="Warning",
                         output=f"alert {i}", output_fields={}, source="syscall", tags=[],
                         hostname="h")  # fmt: skip


def test_an_idle_output_worker_blocks_and_still_delivers(tmp_path: Path) -> None:
    target = tmp_path / "events.txt"
    q = QueuedSink(FileSink(str(target), keep_alive=True))
    try:
        q.put("first", _alert(1))
        eventually(lambda: q.stats.sent == 1, what="the first alert written")
        tid = q._thread.native_id
        assert tid is not None
        assert wakeups(os.getpid(), tid) <= 1  # the old worker woke 5 times a second
        q.put("second", _alert(2))  # put wakes the sleeping worker
        eventually(lambda: q.stats.sent == 2, what="the alert put while it slept")
    finally:
        q.close(5)
    assert target.read_text().splitlines() == ["first", "second"]


def test_an_idle_output_child_blocks_and_still_reopens(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    out = Outputs([ProgramSink(f"cat > /dev/null; echo $$ >> {pids}", keep_alive=True)],
                  options=FormatOptions())  # fmt: skip
    try:
        out.emit(_alert(1))
        eventually(lambda: out.stats().sinks[0].sent == 1, what="the alert through the child")
        queue = out.queues[0]
        assert isinstance(queue, ProcessSink)
        child = queue.pid
        # its reader and its watch on the detector: the old ones woke 2 + 5 times a second
        assert wakeups(child) <= 2
        out.reopen()  # while it sleeps: the program gets EOF and ends, with no alert coming
        eventually(lambda: pids.exists() and len(pids.read_text().split()) == 1,
                   what="the kept-alive program ended by the reopen")
    finally:
        out.close()
