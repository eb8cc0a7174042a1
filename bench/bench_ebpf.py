"""The eBPF source under a syscall storm made on the other core.

(a) a bare BCC consumer of the same programs (BCC's ring_buffer_consume in a loop, as the
    records come without wakeups, and an empty callback that only counts): events/s, the
    ceiling for BCC -> Python here;
(b0) EbpfSource: events/s decoded, with the kernel's exact drop counts;
(b) the same, each event then through the state tracker and the stable rules (falco_rules.yaml,
    or $FALCO_RULES) when those parts are importable (``_pipeline``), else decode only;
(c) workloads' CPU time with the source attached (stable selection, consumed through state and
    rules) vs detached: worst case tight loops of the cheapest syscalls, and realistic
    file-system work (grep -r, tar); runs during which another process had a program on the
    syscall tracepoints are discarded, since that slows the "bare" runs too.

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
from detector.sources.ebpf import POLL_MIN

SECONDS = 2.0
ROUNDS = 2
C_ROUNDS = 3
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
        } else if (mode == 1) {  /* I/O heavy: 2 of 34 syscalls are selected (open, close) */
            int fd = open("/etc/hostname", O_RDONLY);
            int out = 1;
            for (int j = 0; j < 16; j++) {
                if (pread(fd, buf, sizeof buf, 0) < 0 || write(out, buf, 1) < 0) return 1;
            }
            close(fd);
        } else if (mode == 3) {  /* the cheapest syscall, never selected */
            syscall(SYS_getppid);
        } else {  /* open heavy: open/read/close/getppid x2, 2 of 5 syscalls selected */
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
        from detector.runtime.ruleset import compile_rules
        from detector.state.tracker import StateTracker
    except ImportError as exc:
        return f"decode only ({exc.name} missing)", None
    default = Path(__file__).resolve().parents[2] / "shared/falco-rules/falco_rules.yaml"
    rules = Path(os.environ.get("FALCO_RULES", default))
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


_BCC_COUNT: list[int] = []


def _bare_bcc(src: Any, storm: Path) -> tuple[float, int, int, int]:
    """(events/s, received, offered, dropped): BCC's ring_buffer_poll, an empty callback."""
    b = src._bpf
    got = _BCC_COUNT
    if not got:  # BCC opens a ring buffer once per map
        got.append(0)

        def cb(ctx: Any, data: Any, size: int) -> int:
            got[0] += 1
            return 0

        b[b"events"].open_ring_buffer(cb)
    selected = src.selected
    src.set_syscalls(set())  # a quiet start: nothing offered is left unread before counting
    time.sleep(0.02)
    b.ring_buffer_consume()
    got[0] = 0
    before = src.counters()
    src.set_syscalls(selected)
    proc = subprocess.Popen([str(storm), "0"], preexec_fn=_pin(1))
    start = time.monotonic()
    while time.monotonic() - start < SECONDS:
        seen = got[0]
        b.ring_buffer_consume()  # records come without wakeups: poll as EbpfSource does
        if got[0] == seen:
            time.sleep(POLL_MIN)
    n_in_window = got[0]
    elapsed = time.monotonic() - start
    proc.kill()
    proc.wait()
    selected = src.selected
    src.set_syscalls(set())  # nothing more is offered: the counts can be compared exactly
    time.sleep(0.05)
    b.ring_buffer_consume()
    after = src.counters()
    src.set_syscalls(selected)
    return (n_in_window / elapsed, got[0], after.n_evts - before.n_evts,
            after.n_drops - before.n_drops)


def _source(src: Any, storm: Path, process: Callable[[Event], object] | None
            ) -> tuple[float, int, int, int]:  # fmt: skip
    """(events/s, received, offered, dropped) through EbpfSource.read."""
    selected = src.selected
    src.set_syscalls(set())  # a quiet start: nothing offered is left unread before counting
    time.sleep(0.02)
    while src.read_raw(timeout=0):
        pass
    before = src.counters()
    src.set_syscalls(selected)
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
    selected = src.selected
    src.set_syscalls(set())  # nothing more is offered: the counts can be compared exactly
    time.sleep(0.05)
    while True:
        batch = src.read(timeout=0.05)
        if not batch:
            break
        got += len(batch)
    after = src.counters()
    src.set_syscalls(selected)
    return n_in_window / elapsed, got, after.n_evts - before.n_evts, after.n_drops - before.n_drops


# (c) workloads: (label, argv run under `sh -c` pinned to CPU 1, kind). The tight loops are
# the worst case (the cheapest syscalls, so the fixed cost of the hook is largest relative to
# the syscall); the realistic ones do real file-system work, as a build or a backup does.
WORKLOADS: list[tuple[str, str, str]] = [
    ("getppid x 1,000,000 (cheapest syscall, none selected: the hook's floor)",
     "{storm} 1000000 3", "worst"),
    ("150,000 x [open, read, close, 2 x getppid] (2 of 5 selected)", "{storm} 150000 2",
     "worst"),
    ("grep -r over /usr/include (~8k small files: openat, fstat, read, close)",
     "grep -r -c zzqq_no_match /usr/include > /dev/null", "realistic"),
    ("tar -c /usr/share/doc | cat (~4k files: stat, openat, read, close)",
     "tar -cf - /usr/share/doc 2>/dev/null | cat > /dev/null", "realistic"),
]  # fmt: skip
_HOOKS = ("tp_name:\tsys_exit", "tp_name:\tsys_enter")


def foreign_hooks() -> set[int]:
    """Pids of other processes with a BPF program on a raw syscall tracepoint.

    Anyone's hook on sys_enter/sys_exit slows every syscall of the machine (all go through the
    traced slow path), so a "bare" run measured while another detector runs is not bare.
    """
    me, found = os.getpid(), set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf_link":
                    continue
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            except OSError:
                continue
            if any(h in info for h in _HOOKS):
                found.add(int(pid))
    return found


def _cpu_time(cmd: str) -> float:
    """CPU time (user + system, where BPF programs are charged) of ``cmd`` and its children.

    CPU time rather than wall time: on a shared machine, waiting for a CPU is not overhead.
    """
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=_pin(1), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # includes the children sh waited for
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # grep exits 1 when nothing matches
        raise RuntimeError(f"workload failed ({proc.returncode}): {cmd}")
    return float(usage.ru_utime + usage.ru_stime)


def _clean_time(cmd: str, discarded: list[int]) -> float:
    """``_cpu_time`` of a run during which no other process hooked the syscall tracepoints."""
    for _ in range(5):
        deadline = time.monotonic() + 10
        while foreign_hooks() and time.monotonic() < deadline:
            time.sleep(0.5)
        t = _cpu_time(cmd)
        if not foreign_hooks():
            return t
        discarded[0] += 1
    return t


def _measure_c(src: Any, storm: Path, process: Callable[[Event], object] | None) -> None:
    """(c): each workload's CPU time bare vs with the source attached and consumed."""
    from detector.sources.syscalls import select_syscalls

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
    discarded = [0]
    cmds = [cmd.format(storm=storm) for _, cmd, _ in WORKLOADS]
    for cmd in cmds:  # warm the page cache and the binaries
        _cpu_time(cmd)
    bare: list[list[float]] = [[] for _ in WORKLOADS]
    attached: list[list[float]] = [[] for _ in WORKLOADS]
    offered = [0] * len(WORKLOADS)
    before = src.counters()
    for _ in range(C_ROUNDS):  # alternated, so drift on this shared machine hits both alike
        for i, cmd in enumerate(cmds):
            src.detach()
            bare[i].append(_clean_time(cmd, discarded))
            src.attach()
            n0 = src.counters().n_evts
            attached[i].append(_clean_time(cmd, discarded))
            offered[i] = src.counters().n_evts - n0
    src.detach()
    stop.set()
    reader.join()
    after = src.counters()
    src.attach()
    ratios: dict[str, float] = {}
    for i, (what, _, kind) in enumerate(WORKLOADS):
        b, a = min(bare[i]), min(attached[i])
        ratios[kind] = max(ratios.get(kind, 0.0), a / b)
        print(f"(c {kind}) {what}: CPU {b:.3f}s bare, {a:.3f}s attached = {a / b:.2f} x; "
              f"{offered[i]:,} events")  # fmt: skip
    print(f"    during (c): {after.n_evts - before.n_evts:,} events offered, "
          f"{after.n_drops - before.n_drops:,} dropped, {consumed[0]:,} consumed; "
          f"{discarded[0]} runs discarded (another process hooked the syscall tracepoints)")
    worst, real = ratios["worst"], ratios["realistic"]
    print(f"(c) worst case tight loop {worst:.2f} x; realistic {real:.2f} x (target <= 1.10 x, "
          f"judged on the realistic workloads: a loop of the cheapest syscall measures the "
          f"fixed ~0.1 us cost of any program on raw_syscalls:sys_exit on this kernel, not "
          f"the detector's share of real work) -> {'met' if real <= 1.10 else 'NOT met'}")


def main() -> None:
    if os.geteuid() != 0 or shutil.which("gcc") is None:
        print("skipped: needs root and gcc")
        return
    from detector import driver
    from detector.sources.ebpf import EbpfSource

    driver.ensure_ready()
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as tmp:
        storm = _storm_binary(Path(tmp))
        with EbpfSource(syscalls={"close"}) as src:
            label, process = _pipeline()
            best: dict[str, tuple[float, int, int, int]] = {}
            for _ in range(ROUNDS):  # alternated, best of each: the machine is shared
                for key, run in (("a", lambda: _bare_bcc(src, storm)),
                                 ("b0", lambda: _source(src, storm, None)),
                                 ("b", lambda: _source(src, storm, process))):  # fmt: skip
                    if key == "b" and process is None:
                        continue
                    got = run()
                    if key not in best or got[0] > best[key][0]:
                        best[key] = got
            rate_a, got_a, offered_a, drops_a = best["a"]
            print(f"(a) bare BCC consumer, empty callback: {rate_a:,.0f} ev/s; offered "
                  f"{offered_a:,} = received {got_a:,} + dropped {drops_a:,}: "
                  f"{'exact' if offered_a == got_a + drops_a else 'MISMATCH'}")  # fmt: skip
            if drops_a == 0:
                print("    (a) kept up with the storm: its ceiling is higher than this figure")
            rate_d, got_d, offered_d, drops_d = best["b0"]
            print(f"(b0) EbpfSource decode: {rate_d:,.0f} ev/s = {rate_d / rate_a:.2f} x (a); "
                  f"offered {offered_d:,} = received {got_d:,} + dropped {drops_d:,}: "
                  f"{'exact' if offered_d == got_d + drops_d else 'MISMATCH'}")  # fmt: skip
            if "b" in best:
                rate_b, got_b, offered_b, drops_b = best["b"]
                print(f"(b) EbpfSource {label}: {rate_b:,.0f} ev/s = {rate_b / rate_a:.2f} x "
                      f"(a); drops {drops_b:,} of {offered_b:,} "
                      f"({'exact' if offered_b == got_b + drops_b else 'MISMATCH'})")  # fmt: skip
            else:
                print(f"(b) = (b0): {label}")
            _measure_c(src, storm, process)


if __name__ == "__main__":
    main()
