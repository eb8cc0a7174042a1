"""Another git revision of this repository, unpacked beside the tree, for benchmarks that run
the old and the new code alternately in one run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def export_tree(rev: str, into: Path) -> Path | None:
    """The tree of revision ``rev`` in ``into`` (made if missing), with this tree's compiled
    extensions copied in (they are built, not tracked); None without git or the revision."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    for so in (REPO / "detector").rglob("*.so"):
        shutil.copy(so, into / so.relative_to(REPO))
    return into


def missing(rules: Path | None = None, *, gcc: bool = False) -> str | None:
    """Why a benchmark on the kernel cannot run here (not root, no ``gcc`` when asked, no
    ``rules`` file), or None."""
    if os.geteuid() != 0:
        return "needs root (eBPF)"
    if gcc and shutil.which("gcc") is None:
        return "needs gcc"
    if rules is not None and not rules.is_file():
        return f"no rules file {rules} (set FALCO_RULES)"
    return None


def replay_in(tree: Path, script: str, capture: Path, rules: Path) -> dict[str, Any]:
    """The JSON line a replay script (``bench/<script>``, ``CAPTURE RULES ROUNDS``) prints
    last, run once on ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(REPO / "bench" / script), str(capture),
                          str(rules), "1"], env=env, capture_output=True, text=True,
                         check=True, cwd=tree).stdout  # fmt: skip
    got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return got


def print_alerts(alerts: dict[str, dict[str, int]]) -> None:
    """Whether the baseline and this tree raised the same alerts (rule -> count)."""
    same = "the same" if alerts["base"] == alerts["this"] else "DIFFERENT"
    print(f"alerts: {same} in both ({sum(alerts['this'].values())} this tree, "
          f"{sum(alerts['base'].values())} baseline): {alerts['this'] or 'none'}")


@contextmanager
def baseline_run(rev: str, rules: Path | None = None) -> Iterator[tuple[Path, Path] | None]:
    """For a benchmark that runs revision ``rev`` beside this tree on the kernel: (the
    exported tree, a temporary folder), or None once it has printed why it is skipped (not
    root, no ``rules`` file, no git or no revision)."""
    why = missing(rules)
    if why is not None:
        print(f"skipped: {why}")
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = export_tree(rev, Path(tmp) / "base")
        if base is None:
            print(f"skipped: no git or no revision {rev}")
        yield None if base is None else (base, Path(tmp))
