"""The kernel's cost per syscall the detector watches: a C loop of open+close, bare and
watched by ``falcoctl-py run`` (stable rules, per-syscall tracepoints), kernel filters on and
off.

The loop's own CPU time (user + system, where the kernel charges the BPF programs) is what a
watched workload pays for each open+close pair: the tracepoints, the program, and with filters
on the path check (read, a normalisation pass of 32 to 254 steps by the path's length, the
trie lookups) and the mark of the dropped fd; with filters off the two records written to the
ring instead. The opened file is one the stable rules' filter drops. Bare and watched runs
alternate around each detector's start, best of KCOST_ROUNDS; the machine is shared, so only
ratios mean something. While the detector runs, the kernel counts its programs' run time
(BPF_ENABLE_STATS, which adds a clock read to each run, in both configurations): per pair, it
counts every process's events of that window, the loop's by far the most.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from bench import ebpf_workloads as ew
from bench.baseline import missing
from detector.bpf.loader import enable_stats, fdinfo

PAIRS = int(os.environ.get("KCOST_PAIRS", "200000"))
ROUNDS = int(os.environ.get("KCOST_ROUNDS", "3"))
RULES = Path(__file__).resolve().parents[2] / "shared/falco-rules/falco_rules.yaml"
LOOP_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (long i = 0, n = atol(argv[1]); i < n; i++)
        close(open("/usr/include/stdio.h", O_RDONLY));
    return 0;
}
"""
NO_MODULES = ["base_syscalls.custom_set[]=!init_module", "base_syscalls.custom_set[]=!finit_module"]


def _pair_ns(loop: Path) -> float:
    """CPU ns per open+close pair of one run of the loop, pinned to CPU 1."""
    return ew.cpu_time(f"{loop} {PAIRS}") / PAIRS * 1e9


def _prog_ns(pid: int) -> int:
    """Run time (ns) of the BPF programs process ``pid`` holds, as the kernel counts it while
    stats are on (each program once, whatever number of fds it has)."""
    seen: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = fdinfo(int(fd), pid)
        except OSError:  # closed meanwhile
            continue
        if "prog_id" in info and "run_time_ns" in info:
            seen[info["prog_id"]] = int(info["run_time_ns"])
    return sum(seen.values())


def _watched(loop: Path, options: list[str]) -> tuple[float, float, float]:
    """(best bare, best watched) ns per pair, bare runs on both sides of the detector's life,
    and the detector's programs' own run time per pair in its best watched run."""
    bare = [_pair_ns(loop) for _ in range(ROUNDS)]
    det = ew.Detector(RULES, ew.free_port(), options)
    det.start()
    stats = enable_stats()  # the kernel counts program run time while this fd is open
    try:
        assert det.proc is not None
        watched: list[tuple[float, float]] = []
        for _ in range(ROUNDS):
            before = _prog_ns(det.proc.pid)
            ns = _pair_ns(loop)
            watched.append((ns, (_prog_ns(det.proc.pid) - before) / PAIRS))
    finally:
        os.close(stats)
        det.stop()
    bare += [_pair_ns(loop) for _ in range(ROUNDS)]
    best, prog = min(watched)
    return min(bare), best, prog


def main() -> None:
    why = missing(RULES, gcc=True)
    if why is not None:
        print(f"skipped: {why}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, loop = Path(tmp) / "loop.c", Path(tmp) / "loop"
        src.write_text(LOOP_C)
        subprocess.run(["gcc", "-O2", "-o", str(loop), str(src)], check=True)
        off = ["engine.ebpf.kernel_filters=false"]
        for label, extra in (("filters ON", []), ("filters OFF", off)):
            b, w, prog = _watched(loop, NO_MODULES + extra)
            print(f"open+close x {PAIRS:,}, {label}: bare {b:,.0f} ns per pair, watched "
                  f"{w:,.0f} ns: +{w - b:,.0f} ns = {w / b:.2f} x bare; the programs' own "
                  f"run time {prog:,.0f} ns per pair")  # fmt: skip


if __name__ == "__main__":
    main()
