"""The state tracker on the real kernel, this tree against the baseline (BASELINE, loaded from
git): issue 14's fork+exec and gcc workloads watched by the eBPF source (stable rules' syscalls).

(l) per new process: the /proc threads loaded whole and the /proc files read; per delivered
    event: the state's CPU time (best of ROUNDS, the two versions alternated in one run);
(F) with STATE_FULL=1: the four workloads under a real ``falcoctl-py run`` with the stable rules,
    the baseline's tree then this one (bench/ebpf_workloads.py's figures: detector CPU /
    workload CPU, slowdown, drops, RSS).
The machine is shared: only the ratios within one run mean something.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import ebpf_workloads as ew
from bench.baseline import export_tree

BASELINE = os.environ.get("STATE_BASELINE", "6dcf49d")  # main before this work
ROUNDS = int(os.environ.get("STATE_ROUNDS", "3"))
REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("state_live_child.py")
WORKLOADS = {
    "400 fork+exec of /bin/true": "i=0; while [ $i -lt 400 ]; do /bin/true; i=$((i+1)); done",
    "8 gcc -O1 builds": "cd {src} && for f in p[0-7].c; do gcc -O1 -o ${{f%.c}} $f; done",
}


def _run(tree: Path, cmd: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(CHILD), cmd], env=env, capture_output=True,
                         text=True, check=True, cwd=tree).stdout  # fmt: skip
    got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return got


def live(base: Path, src: Path) -> None:
    """(l) both versions alternated, best state time per event of ROUNDS."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for _ in range(ROUNDS):
        for label, cmd in WORKLOADS.items():
            for name, tree in (("baseline", base), ("this tree", REPO)):
                got = _run(tree, cmd.format(src=src))
                got["us"] = got["state"] / max(got["events"], 1) * 1e6
                old = best.get((label, name))
                if old is None or got["us"] < old["us"]:
                    best[(label, name)] = got
    for label in WORKLOADS:
        b = best[(label, "baseline")]
        for name in ("baseline", "this tree"):
            g = best[(label, name)]
            new = max(g["new"], 1)
            print(f"(l) {label}, {name} ({BASELINE if name == 'baseline' else 'HEAD'}): "
                  f"{g['events']:,} events, {g['new']} new processes; per new process "
                  f"{g['threads'] / new:.2f} /proc thread loads, {g['files'] / new:.2f} /proc "
                  f"files read; state {g['us']:.2f} us per event = {g['us'] / b['us']:.2f} x "
                  f"baseline")  # fmt: skip


def full(base: Path) -> None:
    """(F) ``falcoctl-py run`` of the baseline's tree, then of this one."""
    rules = Path(os.environ.get("FALCO_RULES", REPO.parents[0] / "shared/falco-rules/"
                                "falco_rules.yaml"))  # fmt: skip
    if not rules.exists():
        print(f"(F) skipped: no rules file {rules} (set FALCO_RULES)")
        return
    for name, tree in (("baseline", base), ("this tree", REPO)):
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(tree)
        try:
            labels, figs, rss = ew.measure(rules, ew.free_port(), [])
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = old
        ew.report(f"{rules.name}, `falcoctl-py run`, state of {name}", labels, figs, rss)


def main() -> None:
    if os.geteuid() != 0:
        print("skipped: needs root (eBPF)")
        return
    from detector import driver

    driver.ensure_ready()
    with tempfile.TemporaryDirectory() as tmp:
        base = export_tree(BASELINE, Path(tmp) / "base")
        if base is None:
            print(f"skipped: no git or no revision {BASELINE}")
            return
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(8):
            (src / f"p{i}.c").write_text(ew.SMALL_C.format(i=i))
        live(base, src)
        if os.environ.get("STATE_FULL") == "1":
            full(base)
