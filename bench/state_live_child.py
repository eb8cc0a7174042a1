"""One live run for bench_state_live: the state tracker of whatever ``detector`` is first on the
path (this tree's, or the baseline's from git) fed by the eBPF source while a workload runs.

Prints one JSON line: delivered events, CPU seconds in the state, new processes, whole-thread
/proc loads and /proc files read. Run as a script: ``python state_live_child.py CMD``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any


def _count(procfs: Any, counts: dict[str, int]) -> None:
    """Count procfs's readers (called through the module by the state code of every version)."""

    def wrap(name: str, key: str) -> None:
        real = getattr(procfs, name)

        def counted(*a: Any, **kw: Any) -> Any:
            counts[key] += 1
            return real(*a, **kw)

        setattr(procfs, name, counted)

    wrap("read_thread", "threads")
    for name in ("read_text", "read_link", "read_environ"):
        wrap(name, "files")


def main(cmd: str) -> None:
    from bench.bench_ebpf import STABLE_EVENTS
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import select_syscalls
    from detector.state import procfs
    from detector.state.tracker import StateTracker

    selected = select_syscalls(STABLE_EVENTS)
    src = EbpfSource(syscalls=selected).open()
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    known = set(tracker.threads.threads)
    counts = {"threads": 0, "files": 0}
    _count(procfs, counts)
    while src.read(timeout=0):
        pass
    clock = time.process_time
    n, t_state, pids = 0, 0.0, set()
    proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, {1}))  # fmt: skip
    process = tracker.process
    while proc.poll() is None or src.reader_pending():
        batch = src.read(timeout=0.01)
        a = clock()
        for ev in batch:
            process(ev)
        t_state += clock() - a
        n += len(batch)
        for ev in batch:
            if ev.ctx is not None and ev.ctx["pid"] not in known:
                pids.add(ev.ctx["pid"])
    src.close()
    print(json.dumps({"events": n, "state": t_state, "new": len(pids), **counts}))


if __name__ == "__main__":
    main(sys.argv[1])
