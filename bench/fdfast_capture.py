"""Capture for bench_fdfast: the four workloads' events from the real eBPF source (stable rules'
syscalls), pickled with the thread table as it was before them, so the tracker and the rules of
two versions can be replayed on the same events. Run as ``python -m bench.fdfast_capture OUT``.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import time
from typing import Any

from bench import ebpf_workloads as ew
from bench.bench_ebpf import STABLE_EVENTS, _pin


def _capture(src: Any, cmd: str) -> list[Any]:
    """The events delivered while ``cmd`` runs (copies made before any state is attached)."""
    out: list[Any] = []
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=_pin(1), stdout=subprocess.DEVNULL)
    while proc.poll() is None or src.reader_pending():
        if not src.reader_pending():
            time.sleep(0.001)
            continue
        out.extend(copy.copy(ev) for ev in src.read(timeout=0))
    return out


def main(dest: str) -> None:
    from detector import driver
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import select_syscalls
    from detector.state.tracker import StateTracker

    driver.ensure_ready()
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    threads = dict(tracker.threads.threads)
    got, _ = ew.capture_each(lambda: EbpfSource(syscalls=select_syscalls(STABLE_EVENTS)).open(),
                             _capture, "events")
    with open(dest, "wb") as f:
        pickle.dump({"threads": threads, "events": got}, f, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main(sys.argv[1])
