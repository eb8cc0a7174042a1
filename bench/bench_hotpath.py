"""Userspace cost per delivered event (decode, state, rules), this tree against a baseline
(HOTPATH_BASELINE, main before this work, exported from git with its own compiled decoder).

The raw records of issue 14's four workloads are captured once from the real eBPF source with
the stable rules' kernel filters on, only the workload's own processes kept
(bench/hotpath_capture.py); each version then decodes them, runs them through its state tracker
and the stable rules in a child process (bench/hotpath_replay.py), versions alternated, best of
HOTPATH_ROUNDS. Printed: us per event in each step, the ratio to the baseline, and whether the
alerts are the same. The event loop, ring-buffer polling and outputs are not in these figures
(bench_ebpf measures the whole detector). The machine is shared: only ratios within one run
mean something.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from bench.baseline import baseline_run, print_alerts, replay_in

REPO = Path(__file__).resolve().parents[1]
BASELINE = os.environ.get("HOTPATH_BASELINE", "eda88f1")  # main before this work
ROUNDS = int(os.environ.get("HOTPATH_ROUNDS", "3"))
RULES = Path(os.environ.get("FALCO_RULES", REPO.parents[0] / "shared/falco-rules/"
                            "falco_rules.yaml"))  # fmt: skip


def _build_lean(tree: Path) -> str:
    """Compile the baseline's own decoder (the copied one is this tree's); "" or why not."""
    src = tree / "detector/sources"
    out = src / f"_lean{sysconfig.get_config_var('EXT_SUFFIX')}"
    out.unlink(missing_ok=True)
    sources = sorted(str(p) for p in src.glob("_lean*.c"))
    if not sources:
        return "no compiled decoder at that revision"
    argv = ["gcc", "-O2", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
            *sources, "-o", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else f"gcc failed: {done.stderr.strip()[:200]}"



def _report(base: dict[str, list[int]], this: dict[str, list[int]]) -> None:
    for label, (n, *t) in this.items():
        b = base[label][1:]
        us = [x / n / 1e3 for x in b], [x / n / 1e3 for x in t]
        print(f"{label}: {n:,} events; decode+state+rules {sum(us[0]):.2f} -> {sum(us[1]):.2f} us "
              f"per event = {sum(t) / sum(b):.2f} x baseline (decode {us[0][0]:.2f} -> "
              f"{us[1][0]:.2f}, state {us[0][1]:.2f} -> {us[1][1]:.2f}, rules {us[0][2]:.2f} -> "
              f"{us[1][2]:.2f})")  # fmt: skip


def main() -> None:
    with baseline_run(BASELINE, RULES) as prepared:
        if prepared is None:
            return
        base, tmp = prepared
        why = _build_lean(base)
        capture = Path(tmp) / "capture.pkl"
        subprocess.run([sys.executable, "-m", "bench.hotpath_capture", str(capture), str(RULES)],
                       check=True, cwd=REPO)  # fmt: skip
        best: dict[str, dict[str, list[int]]] = {"base": {}, "this": {}}
        alerts: dict[str, Any] = {}
        for _ in range(ROUNDS):
            for name, tree in (("base", base), ("this", REPO)):
                got = replay_in(tree, "hotpath_replay.py", capture, RULES)
                for label, row in got["times"].items():
                    old = best[name].get(label)
                    best[name][label] = [row[0], *map(min, row[1:], old[1:])] if old else row
                alerts[name] = got["alerts"]
    print(f"decoded, tracked and matched against {RULES.name}, best of {ROUNDS}; baseline "
          f"{BASELINE} ({why or 'its own compiled decoder'}) -> this tree")  # fmt: skip
    _report(best["base"], best["this"])
    print_alerts(alerts)
