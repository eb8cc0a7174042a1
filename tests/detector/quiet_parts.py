"""Counting a thread's or a process's wake-ups: the voluntary context switches in /proc (each
sleep that ends is one), over a window in which the thing should have nothing to do."""

from __future__ import annotations

import time
from pathlib import Path

WINDOW = 1.0  # seconds watched: an old 0.2 s timer shows 5 wake-ups, a blocked thread 0-1


def switches(pid: int, tid: int | None = None) -> int:
    """Voluntary context switches of thread ``tid`` of ``pid`` (None: all its threads)."""
    tasks = [str(tid)] if tid is not None else [t.name for t in Path(f"/proc/{pid}/task").iterdir()]
    total = 0
    for t in tasks:
        status = Path(f"/proc/{pid}/task/{t}/status").read_text()
        total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


def wakeups(pid: int, tid: int | None = None, window: float = WINDOW) -> int:
    """How many times the thread (or every thread of the process) woke in ``window`` seconds."""
    before = switches(pid, tid)
    time.sleep(window)
    return switches(pid, tid) - before
