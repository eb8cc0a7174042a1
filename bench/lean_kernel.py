"""bench_lean's real-kernel parts: the storm (s) and the workloads (w), each read loop in turn."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ebpf_workloads as ew
from bench.bench_ebpf import STABLE_EVENTS, _pin, _storm_binary
from detector.sources import fast

SECONDS = 2.0
RULES = Path(os.environ.get("FALCO_RULES", Path(__file__).resolve().parents[2]
                            / "shared/falco-rules/falco_rules.yaml"))  # fmt: skip


def _loops() -> list[str]:
    return ["python", "compiled"] if fast.LEAN is not None else ["python"]


def _quiet(src: Any) -> int:
    """Nothing selected, the ring buffer emptied (how many records were left in it): the
    kernel's counts can be compared."""
    src.set_syscalls(set())
    time.sleep(0.05)
    left = 0
    while batch := src.read(timeout=0):
        left += len(batch)
    return left


def _storm(src: Any, storm: Path, selected: set[str]) -> tuple[float, int, int, int, float]:
    """(events/s, received, offered, dropped, CPU s per event read) while the open/read/close
    storm runs."""
    _quiet(src)
    before = src.counters()
    src.set_syscalls(selected)
    proc = subprocess.Popen([str(storm), "0", "2"], preexec_fn=_pin(1), stdout=subprocess.DEVNULL)
    got, start, cpu = 0, time.monotonic(), time.process_time()
    while time.monotonic() - start < SECONDS:
        got += len(src.read(timeout=0.1))
    rate = got / (time.monotonic() - start)
    per_event = (time.process_time() - cpu) / max(got, 1)
    proc.kill()
    proc.wait()
    got += _quiet(src)
    after = src.counters()
    return rate, got, after.n_evts - before.n_evts, after.n_drops - before.n_drops, per_event


def storm_rates(rounds: int) -> None:
    """(s) EbpfSource with each read loop under the same storm, alternated, best of rounds."""
    from detector import driver
    from detector.sources.ebpf import EbpfSource

    driver.ensure_ready()
    os.sched_setaffinity(0, {0})
    best: dict[str, tuple[float, int, int, int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        storm = _storm_binary(Path(tmp))
        sources = {name: EbpfSource(syscalls={"open", "openat", "close"}, decoder=name).open()
                   for name in _loops()}  # fmt: skip
        try:
            for src in sources.values():
                _quiet(src)
            for _ in range(rounds):
                for name, src in sources.items():
                    figs = _storm(src, storm, {"open", "openat", "close"})
                    if name not in best or figs[4] < best[name][4]:
                        best[name] = figs
        finally:
            for src in sources.values():
                src.close()
    base = best["python"][4]
    for name, (rate, got, offered, dropped, cpu) in best.items():
        exact = "exact" if offered == got + dropped else "MISMATCH"
        print(f"(s) kernel storm (open/read/close), loop {name}: {cpu * 1e6:.2f} us of CPU per "
              f"event read = {cpu / base:.2f} x python; {rate:,.0f} ev/s read; dropped "
              f"{dropped / max(offered, 1):.1%} (offered {offered:,} = received {got:,} + "
              f"dropped {dropped:,}: {exact})")  # fmt: skip


def _pipeline() -> tuple[Any, Callable[[Any], Any]]:
    from detector.config import load_config
    from detector.runtime.ruleset import compile_rules
    from detector.state.tracker import StateTracker

    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    engine = compile_rules(files=[RULES], config=load_config()).engine
    return tracker, engine.process


def _watch(src: Any, tracker: Any, rules: Callable[[Any], Any], cmd: str,
           selected: frozenset[str]) -> tuple[float, ...]:  # fmt: skip
    """(delivered, CPU read+decode, CPU state, CPU rules) of this process while ``cmd`` runs
    (the other sources select nothing meanwhile)."""
    src.set_syscalls(selected)
    clock = time.process_time
    n, t_read, t_state, t_rules = 0, 0.0, 0.0, 0.0
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=_pin(1), stdout=subprocess.DEVNULL)
    while proc.poll() is None or src.reader_pending():
        if not src.reader_pending():
            time.sleep(0.001)
            continue
        a = clock()
        batch = src.read(timeout=0)
        b = clock()
        evs = [tracker.process(ev) for ev in batch]
        c = clock()
        for ev in evs:
            rules(ev)
        t_read, t_state, t_rules = t_read + b - a, t_state + c - b, t_rules + clock() - c
        n += len(batch)
    _quiet(src)
    return n, t_read, t_state, t_rules


def workloads(rounds: int) -> None:
    """(w) detector CPU per delivered event under each workload, with each read loop."""
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import select_syscalls

    if not RULES.exists():
        print(f"(w) skipped: no rules file {RULES} (set FALCO_RULES)")
        return
    tracker, rules = _pipeline()
    selected = select_syscalls(STABLE_EVENTS)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = ew.workloads(Path(tmp))
        for _, cmd in jobs:
            ew.cpu_time(cmd)  # warm the page cache
        sources = {name: EbpfSource(syscalls=selected, decoder=name).open() for name in _loops()}
        best: dict[tuple[str, str], tuple[float, ...]] = {}
        for src in sources.values():
            _quiet(src)
        try:
            for _ in range(rounds):
                for label, cmd in jobs:
                    for name, src in sources.items():
                        got = _watch(src, tracker, rules, cmd, selected)
                        total = sum(got[1:]) / max(got[0], 1)
                        old = best.get((label, name))
                        if old is None or total < sum(old[1:]) / max(old[0], 1):
                            best[(label, name)] = got
        finally:
            for src in sources.values():
                src.close()
    for label, _ in jobs:
        base = best[(label, "python")]
        base_us = sum(base[1:]) / max(base[0], 1) * 1e6
        for name in _loops():
            n, r, s, k = best[(label, name)]
            us = (r + s + k) / max(n, 1) * 1e6
            print(f"(w) {label}, loop {name}: {n:,.0f} events, {us:.2f} us of detector CPU per "
                  f"event = {us / base_us:.2f} x python (read+decode {r / n * 1e6:.2f}, state "
                  f"{s / n * 1e6:.2f}, rules {k / n * 1e6:.2f} us)")  # fmt: skip


def full_runs() -> None:
    """(W) the workloads under a real ``falcoctl-py run`` (bench/ebpf_workloads.py), once with
    the pure-Python loop (FALCOCTL_PY_PURE_DECODE=1) and once with the compiled one."""
    if not RULES.exists():
        print(f"(W) skipped: no rules file {RULES} (set FALCO_RULES)")
        return
    for name in _loops():
        if name == "python":
            os.environ[fast.ENV_PURE] = "1"
        try:
            labels, figs, rss = ew.measure(RULES, ew.free_port(), [])
        finally:
            os.environ.pop(fast.ENV_PURE, None)
        ew.report(f"{RULES.name}, `falcoctl-py run`, read loop {name}", labels, figs, rss)
