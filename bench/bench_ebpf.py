"""The eBPF source under a syscall storm made on the other core.

(a) a bare BCC consumer of the same programs (BCC's ring_buffer_poll, an empty callback that
    only counts): events/s, the ceiling for BCC -> Python here;
(b) EbpfSource: events/s decoded (and, when the state tracker and the rules engine are there,
    processed through state and the stable rules), with the kernel's exact drop counts;
(c) a syscall-heavy workload's wall time with the source attached and consuming vs without.

The storm is a C loop of close(-1) pinned to CPU 1; the consumer is pinned to CPU 0.
Targets: (b) >= 0.5 x (a) with drops counted exactly; (c) <= 1.10 x.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.events import Event

SECONDS = 3.0
WORKLOAD_ITERS = 150_000
STORM_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int mode = argc > 2 ? atoi(argv[2]) : 0;
    char buf[64];
    for (long i = 0; n == 0 || i < n; i++) {
        if (mode == 0) {
            syscall(SYS_close, 99999);
        } else {
            int fd = open("/etc/hostname", O_RDONLY);
            if (read(fd, buf, sizeof buf) < 0) return 1;
            close(fd);
            getppid();
            getppid();
        }
    }
    return 0;
}
"""
# Event types the stable rules file names (falco_rules.yaml), for the realistic selection.
STABLE_EVENTS = frozenset(
    {"execve", "execveat", "open", "openat", "openat2", "creat", "connect", "accept", "accept4",
     "listen", "socket", "sendto", "sendmsg", "dup", "dup2", "dup3", "symlink", "symlinkat",
     "link", "linkat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "rmdir",
     "mkdir", "mkdirat", "chmod", "fchmod", "fchmodat", "ptrace", "init_module",
     "finit_module", "bpf", "userfaultfd", "setuid", "memfd_create"}
)  # fmt: skip


def _pin(cpu: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


def _storm_binary(workdir: Path) -> Path:
    src = workdir / "storm.c"
    src.write_text(STORM_C)
    exe = workdir / "storm"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def _pipeline() -> tuple[str, Callable[[Event], object] | None]:
    """State tracker + the stable rules when those parts exist, else decode only."""
    try:
        from detector.config import load_config
        from detector.ruleset import compile_rules
        from detector.state.tracker import StateTracker
    except ImportError as exc:
        return f"decode only ({exc.name} missing)", None
    rules = Path(os.environ.get("FALCO_RULES", "../shared/falco-rules/falco_rules.yaml"))
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    try:
        engine = compile_rules(files=[rules], config=load_config()).engine
    except Exception as exc:  # the rules engine is not there yet, or no rules file
        process_state = tracker.process
        return f"decode + state (rules: {exc})", process_state

    def both(ev: Event) -> object:
        return engine.process(tracker.process(ev))

    return f"decode + state + {rules.name}", both


def _bare_bcc(src: Any, storm: Path) -> tuple[float, int, int]:
    """(events/s, received, dropped) with BCC's own ring buffer poll and an empty callback."""
    b = src._bpf
    got = [0]

    def cb(ctx: Any, data: Any, size: int) -> int:
        got[0] += 1
        return 0

    b[b"events"].open_ring_buffer(cb)
    before = src.counters()
    proc = subprocess.Popen([str(storm), "0"], preexec_fn=_pin(1))
    start = time.monotonic()
    while time.monotonic() - start < SECONDS:
        b.ring_buffer_poll(100)
    n_in_window = got[0]
    elapsed = time.monotonic() - start
    proc.kill()
    proc.wait()
    b.ring_buffer_consume()
    after = src.counters()
    return n_in_window / elapsed, got[0], after.n_drops - before.n_drops


def _source(src: Any, storm: Path, process: Callable[[Event], object] | None
            ) -> tuple[float, int, int, int]:  # fmt: skip
    """(events/s, received, offered, dropped) through EbpfSource.read."""
    while src.read_raw(timeout=0):
        pass
    before = src.counters()
    got = 0
    proc = subprocess.Popen([str(storm), "0"], preexec_fn=_pin(1))
    start = time.monotonic()
    while time.monotonic() - start < SECONDS:
        batch = src.read(timeout=0.1)
        if process is not None:
            for ev in batch:
                process(ev)
        got += len(batch)
    elapsed = time.monotonic() - start
    n_in_window = got
    proc.kill()
    proc.wait()
    while True:
        batch = src.read(timeout=0.05)
        if not batch:
            break
        got += len(batch)
    after = src.counters()
    return n_in_window / elapsed, got, after.n_evts - before.n_evts, after.n_drops - before.n_drops


def _workload(storm: Path) -> float:
    start = time.monotonic()
    subprocess.run([str(storm), str(WORKLOAD_ITERS), "1"], preexec_fn=_pin(1), check=True)
    return time.monotonic() - start


def main() -> None:
    if os.geteuid() != 0 or shutil.which("gcc") is None:
        print("skipped: needs root and gcc")
        return
    from detector import driver
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import select_syscalls

    driver.ensure_ready()
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as tmp:
        storm = _storm_binary(Path(tmp))
        bare_times = [_workload(storm) for _ in range(2)]
        with EbpfSource(syscalls={"close"}) as src:
            rate_a, got_a, drops_a = _bare_bcc(src, storm)
            print(f"(a) bare BCC consumer, empty callback: {rate_a:,.0f} ev/s "
                  f"(received {got_a:,}, kernel drops {drops_a:,})")  # fmt: skip
            rate_d, got_d, offered_d, drops_d = _source(src, storm, None)
            print(f"(b0) EbpfSource decode: {rate_d:,.0f} ev/s = {rate_d / rate_a:.2f} x (a); "
                  f"offered {offered_d:,} = received {got_d:,} + dropped {drops_d:,}: "
                  f"{'exact' if offered_d == got_d + drops_d else 'MISMATCH'}")  # fmt: skip
            label, process = _pipeline()
            if process is not None:
                rate_b, got_b, offered_b, drops_b = _source(src, storm, process)
                print(f"(b) EbpfSource {label}: {rate_b:,.0f} ev/s = {rate_b / rate_a:.2f} x "
                      f"(a); drops {drops_b:,} of {offered_b:,} "
                      f"({'exact' if offered_b == got_b + drops_b else 'MISMATCH'})")  # fmt: skip
            else:
                print(f"(b) = (b0): {label}")
            # (c) the realistic selection (stable rules + state), consumed in a thread
            src.set_syscalls(select_syscalls(STABLE_EVENTS))
            stop = threading.Event()
            consumed = [0]

            def consume() -> None:
                while not stop.is_set():
                    batch = src.read(timeout=0.05)
                    if process is not None:
                        for ev in batch:
                            process(ev)
                    consumed[0] += len(batch)

            reader = threading.Thread(target=consume, daemon=True)
            reader.start()
            before = src.counters()
            with_times = [_workload(storm) for _ in range(2)]
            stop.set()
            reader.join()
            after = src.counters()
        bare = min(bare_times)
        attached = min(with_times)
        print(f"(c) workload ({WORKLOAD_ITERS:,} x open/read/close/getppid x2): "
              f"{bare:.3f}s bare, {attached:.3f}s with the source = {attached / bare:.2f} x; "
              f"{after.n_evts - before.n_evts:,} events, "
              f"{after.n_drops - before.n_drops:,} dropped, {consumed[0]:,} consumed")  # fmt: skip


if __name__ == "__main__":
    main()
