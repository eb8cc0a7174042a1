"""The eBPF source: the hook's floor, issue 14's workloads, and the ring buffer under a storm.

(f) a loop of 1,000,000 getppid (never selected), CPU time watched / bare, per hook design:
    per-syscall tracepoints, the raw hook taking every syscall (stable selection with
    init_module, which has no tracepoint here), and hook="tp_btf"; target <= 1.05 x;
(w) issue 14's workloads bare and watched by a real `falcoctl-py run` with the stable rules
    (bench/ebpf_workloads.py): slowdown, detector CPU / workload CPU, per syscall made and per
    event delivered, kernel drop counts, RSS; per-syscall tracepoints with kernel filters on
    and off (engine.ebpf.kernel_filters), and the default selection (raw hook) with them on;
(k) the share of offered events the kernel filter keeps, per workload and event type;
(a) a bare BCC consumer of the same programs (BCC's ring_buffer_consume in a loop, an empty
    callback that only counts): events/s, the ceiling for BCC -> Python here;
(b0) EbpfSource: events/s decoded, with the kernel's exact drop counts;
(b) the same, each event then through the state tracker and the stable rules.

The storm is a C loop of close(-1) pinned to CPU 1; the consumer is pinned to CPU 0. All
figures are ratios within one run: the machine is shared, absolute times drift.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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


_HOOKS = ("tp_name:\tsys_exit", "tp_name:\tsys_enter")


def _fd_kinds(pid: str) -> tuple[bool, bool]:
    """(a raw syscall hook link, a tracepoint program with a perf event) among ``pid``'s fds."""
    raw = perf = tp_prog = False
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target == "anon_inode:[perf_event]":
                perf = True
                continue
            if target not in ("anon_inode:bpf_link", "anon_inode:bpf-prog"):
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        raw = raw or any(h in info for h in _HOOKS)
        tp_prog = tp_prog or "prog_type:\t5\n" in info
    return raw, perf and tp_prog


def foreign_hooks(exclude: frozenset[int] = frozenset()) -> set[int]:
    """Pids of other processes with a BPF program on syscall tracepoints.

    Anyone's hook on sys_enter/sys_exit (raw, or a syscalls:* tracepoint) slows every syscall
    of the machine (all go through the traced slow path), so a "bare" run measured while
    another detector runs is not bare.
    """
    me, found = os.getpid(), set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me or int(pid) in exclude:
            continue
        try:
            raw, tp = _fd_kinds(pid)
        except OSError:
            continue
        if raw or tp:
            found.add(int(pid))
    return found


def _cpu_time(cmd: str) -> float:
    """CPU time (user + system, where BPF programs are charged) of ``cmd`` and its children."""
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=_pin(1), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # includes the children sh waited for
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"workload failed: {cmd}")
    return float(usage.ru_utime + usage.ru_stime)


FLOOR_CONFIGS = (
    ("per-syscall tracepoints, stable selection without init_module/finit_module", "auto", True),
    ("stable selection with init_module (no tracepoint here: the raw hook takes all)", "auto",
     False),
    ("one raw tp_btf hook for every syscall (the previous design)", "tp_btf", False),
)


def _floor(storm: Path) -> None:
    """getppid loop CPU time watched / bare, per hook configuration (best of C_ROUNDS)."""
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import select_syscalls

    cmd = f"{storm} 1000000 3"
    _cpu_time(cmd)
    busy = foreign_hooks()
    if busy:
        print(f"    note: processes {sorted(busy)} hook syscall tracepoints: bare is slower too")
    for label, hook, no_modules in FLOOR_CONFIGS:
        selected = select_syscalls(STABLE_EVENTS)
        if no_modules:
            selected -= {"init_module", "finit_module"}
        with EbpfSource(syscalls=selected, hook=hook) as src:
            bare: list[float] = []
            watched: list[float] = []
            for _ in range(C_ROUNDS):  # alternated: drift on this shared machine hits both
                src.detach()
                bare.append(_cpu_time(cmd))
                src.attach()
                watched.append(_cpu_time(cmd))
                while src.read_raw(timeout=0):
                    pass
            b, w = min(bare), min(watched)
            print(f"(f) getppid x 1,000,000, {label}: {w / b:.3f} x bare ({(w - b) * 1e3:.0f} ns "
                  f"per call; spread of {C_ROUNDS} runs {max(bare) / b:.2f} bare, "
                  f"{max(watched) / w:.2f} watched) (target <= 1.05 x)")  # fmt: skip


def _workloads() -> None:
    """Issue 14's workloads watched by `falcoctl-py run` with the stable rules, two designs."""
    from bench import ebpf_workloads as ew

    default = Path(__file__).resolve().parents[2] / "shared/falco-rules/falco_rules.yaml"
    rules = Path(os.environ.get("FALCO_RULES", default))
    if not rules.exists():
        print(f"(w) skipped: no rules file {rules} (set FALCO_RULES)")
        return
    no_modules = ["base_syscalls.custom_set[]=!init_module",
                  "base_syscalls.custom_set[]=!finit_module"]
    no_filters = ["engine.ebpf.kernel_filters=false"]
    designs: tuple[tuple[str, list[str]], ...] = (
        ("per-syscall tracepoints (init_module/finit_module removed), kernel filters ON",
         no_modules),
        ("per-syscall tracepoints, kernel filters OFF", [*no_modules, *no_filters]),
        ("default selection (one raw hook: init_module has no tracepoint), kernel filters ON",
         []),
    )  # fmt: skip
    for title, options in designs:
        labels, figs, rss = ew.measure(rules, ew.free_port(), options)
        ew.report(f"{rules.name}, {title}", labels, figs, rss)
    ew.filter_shares(rules)


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
        _floor(storm)
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
        _workloads()


if __name__ == "__main__":
    main()
