"""The state tracker and the rules engine per event type, this tree against the baseline
(FDFAST_BASELINE, main before this work, loaded from git) on the same captured events.

The four workloads of issue 14 are captured once from the real eBPF source with the stable
rules' syscalls (bench/fdfast_capture.py), then replayed through each version's tracker and
stable rules in a child process (bench/fdfast_replay.py), the versions alternated, best of
FDFAST_ROUNDS. Printed: us per event per type (state, rules) and the ratio to the baseline.
The machine is shared: only the ratios within one run mean something.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.baseline import baseline_run, print_alerts, replay_in

REPO = Path(__file__).resolve().parents[1]
BASELINE = os.environ.get("FDFAST_BASELINE", "85387ce")  # main before this work
ROUNDS = int(os.environ.get("FDFAST_ROUNDS", "3"))
RULES = Path(os.environ.get("FALCO_RULES", REPO.parents[0] / "shared/falco-rules/"
                            "falco_rules.yaml"))  # fmt: skip
TYPES = ("openat", "close", "fcntl", "socket", "connect", "accept", "execve", "vfork")



def _merge(best: dict[str, dict[str, list[int]]], got: dict[str, dict[str, list[int]]]) -> None:
    for label, per in got.items():
        mine = best.setdefault(label, {})
        for etype, (n, s, r) in per.items():
            old = mine.get(etype)
            mine[etype] = [n, min(s, old[1]), min(r, old[2])] if old else [n, s, r]


def _report(base: dict[str, Any], this: dict[str, Any]) -> None:
    for label in this:
        b, t = base[label], this[label]
        nb = sum(v[0] for v in b.values())
        sb, rb = sum(v[1] for v in b.values()) / nb / 1e3, sum(v[2] for v in b.values()) / nb / 1e3
        st, rt = sum(v[1] for v in t.values()) / nb / 1e3, sum(v[2] for v in t.values()) / nb / 1e3
        print(f"{label}: {nb:,} events; state+rules {sb + rb:.2f} -> {st + rt:.2f} us per event "
              f"= {(st + rt) / (sb + rb):.2f} x baseline (state {sb:.2f} -> {st:.2f}, rules "
              f"{rb:.2f} -> {rt:.2f})")  # fmt: skip
        for etype in TYPES:
            if etype in t and t[etype][0] >= 50:
                n, s0, r0 = b[etype]
                _, s1, r1 = t[etype]
                print(f"    {etype:8} {n:6,}: state {s0 / n / 1e3:.2f} -> {s1 / n / 1e3:.2f}, "
                      f"rules {r0 / n / 1e3:.2f} -> {r1 / n / 1e3:.2f} us "
                      f"= {(s1 + r1) / (s0 + r0):.2f} x")  # fmt: skip


def main() -> None:
    with baseline_run(BASELINE, RULES) as prepared:
        if prepared is None:
            return
        base, tmp = prepared
        capture = Path(tmp) / "capture.pkl"
        subprocess.run([sys.executable, "-m", "bench.fdfast_capture", str(capture)], check=True,
                       cwd=REPO)  # fmt: skip
        best: dict[str, dict[str, dict[str, list[int]]]] = {"base": {}, "this": {}}
        alerts: dict[str, Any] = {}
        for _ in range(ROUNDS):
            for name, tree in (("base", base), ("this", REPO)):
                got = replay_in(tree, "fdfast_replay.py", capture, RULES)
                _merge(best[name], got["times"])
                alerts[name] = got["alerts"]
    print(f"replayed through the tracker and {RULES.name}, best of {ROUNDS}; baseline "
          f"{BASELINE} -> HEAD (timer overhead in both)")  # fmt: skip
    _report(best["base"], best["this"])
    print_alerts(alerts)
