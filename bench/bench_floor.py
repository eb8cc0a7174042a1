"""What a watched workload pays in the kernel alone, against the floor of any tracepoint hook.

Per issue 14 workload (bench/ebpf_workloads.py), CPU time of the workload (user + system,
where the kernel charges BPF programs), best of FLOOR_ROUNDS, three ways alternated in each
round so that the shared machine's drift hits all three:

* bare: nothing attached;
* floor: a program that returns at once, on the same ``syscalls:sys_exit_<name>`` tracepoints
  (and ``sched_process_exit``) the detector takes with the stable rules: what any per-syscall
  tracepoint design costs here before doing anything;
* kernel side: the detector's own programs with the stable rules' kernel filters, loaded in
  this process, whose records are read raw (never decoded) on CPU 0 while the workload runs
  on CPU 1, so the userspace detector's work is left out.

bench_ebpf (w) gives the whole slowdown with a real ``falcoctl-py run``; the gap between its
figure and "kernel side" is the userspace detector's share, between "kernel side" and "floor"
the programs' work (records, filters), and "floor" is what no program can take back.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import ebpf_workloads as ew
from bench.baseline import missing

ROUNDS = int(os.environ.get("FLOOR_ROUNDS", "5"))
RULES = Path(os.environ.get("FALCO_RULES", Path(__file__).resolve().parents[2]
                            / "shared/falco-rules/falco_rules.yaml"))  # fmt: skip
EMPTY = "int floor_exit(void *ctx) { return 0; }\n"


def _cpu_reading(cmd: str, src: Any) -> float:
    """CPU time (user + system) of ``cmd`` and its children on CPU 1, the ring read meanwhile."""
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=lambda: os.sched_setaffinity(0, {1}),
                            stdout=subprocess.DEVNULL)  # fmt: skip
    while True:  # reaped here, not by Popen, to keep the child's rusage
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        src.read_raw(timeout=0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"workload failed: {cmd}")
    while src.read_raw(timeout=0):
        pass
    return float(usage.ru_utime + usage.ru_stime)


class Floor:
    """The empty program on the tracepoints of ``selected``, attached on demand."""

    def __init__(self, selected: frozenset[str]) -> None:
        from bcc import BPF  # Debian's python3-bpfcc

        from detector.bpf.hooks import exit_tracepoints, tracepoint_of

        self._bpf = BPF(text=EMPTY)
        available = exit_tracepoints()
        self.tps = sorted({tp for s in selected if (tp := tracepoint_of(s, available))})

    def attach(self) -> None:
        for tp in self.tps:
            self._bpf.attach_tracepoint(tp=tp, fn_name=b"floor_exit")
        self._bpf.attach_tracepoint(tp="sched:sched_process_exit", fn_name=b"floor_exit")

    def detach(self) -> None:
        for tp in [*self.tps, "sched:sched_process_exit"]:
            self._bpf.detach_tracepoint(tp)

    def close(self) -> None:
        self._bpf.cleanup()


def main() -> None:
    why = missing(RULES, gcc=True)
    if why:
        print(f"(s) skipped: {why}")
        return
    from detector.sources.ebpf import EbpfSource

    os.sched_setaffinity(0, {0})
    selected, plan = ew.rules_plan(RULES)
    floor = Floor(selected)
    print(f"(s) {len(floor.tps)} sys_exit tracepoints and sched_process_exit; best of {ROUNDS}, "
          "bare / floor / kernel side alternated in each round")  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp, EbpfSource(syscalls=selected) as src:
            src.set_filters(plan)
            src.detach()
            jobs = ew.workloads(Path(tmp))
            for label, cmd in jobs:
                ew.cpu_time(cmd)  # warm the page cache
                runs: dict[str, list[float]] = {"bare": [], "floor": [], "kernel": []}
                drops = src.counters().n_drops
                for _ in range(ROUNDS):
                    runs["bare"].append(ew.cpu_time(cmd))
                    floor.attach()
                    runs["floor"].append(ew.cpu_time(cmd))
                    floor.detach()
                    src.attach()
                    runs["kernel"].append(_cpu_reading(cmd, src))
                    src.detach()
                b, f, k = (min(runs[n]) for n in ("bare", "floor", "kernel"))
                spread = "/".join(f"{max(v) / min(v):.2f}" for v in runs.values())
                print(f"(s) {label}: floor {f / b:.3f} x bare, kernel side {k / b:.3f} x bare "
                      f"(CPU {b:.3f}s bare, {f:.3f}s floor, {k:.3f}s kernel side; spread "
                      f"{spread}; ring drops {src.counters().n_drops - drops:,})")  # fmt: skip
    finally:
        floor.close()
