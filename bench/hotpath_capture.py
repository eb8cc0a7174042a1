"""Capture for bench_hotpath: the raw ring-buffer records of issue 14's workloads, as the
detector receives them (stable rules' syscalls, kernel filters of the stable rules on), pickled
with the thread table from a /proc scan made before them. ``python -m bench.hotpath_capture OUT``.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from typing import Any

from bench import ebpf_workloads as ew
from bench.bench_ebpf import STABLE_EVENTS, _pin


def _capture(src: Any, cmd: str) -> list[bytes]:
    """The records of ``cmd``'s processes (followed through each record's parent pid) delivered
    while it runs, as bytes: other work on this shared machine is left out."""
    from detector.sources.layout import HDR

    out: list[bytes] = []
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=_pin(1), stdout=subprocess.DEVNULL)
    ours = {proc.pid}
    while proc.poll() is None or src.reader_pending():
        got = src.read_raw(timeout=0)
        if not got:
            time.sleep(0.001)
        for rec in got:
            h = HDR.unpack_from(rec, 0)
            pid = h[1] >> 32
            if pid in ours or h[11] in ours:
                ours.add(pid)
                out.append(rec)
    return out


def main(dest: str, rules: str) -> None:
    from detector import driver
    from detector.kfilter.build import build
    from detector.rules.load.loader import load_rules_files
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import select_syscalls
    from detector.state.tracker import StateTracker

    driver.ensure_ready()
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    threads = dict(tracker.threads.threads)
    selected = select_syscalls(STABLE_EVENTS)
    loaded = load_rules_files([rules])
    plan = build(loaded.rules, selected).plan

    def open_source() -> Any:
        src = EbpfSource(syscalls=selected).open()
        src.set_filters(plan)
        return src

    got, src = ew.capture_each(open_source, _capture, "records")
    with open(dest, "wb") as f:
        pickle.dump({"threads": threads, "records": got, "boot": src.boot_to_epoch_ns}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
