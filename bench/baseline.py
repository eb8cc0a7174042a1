"""Another git revision of this repository, unpacked beside the tree, for benchmarks that run
the old and the new code alternately in one run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def baseline_run(rev: str, rules: Path | None = None) -> Iterator[tuple[Path, Path] | None]:
    """For a benchmark that runs revision ``rev`` beside this tree on the kernel: (the
    exported tree, a temporary folder), or None once it has printed why it is skipped (not
    root, no ``rules`` file, no git or no revision)."""
    if os.geteuid() != 0:
        print("skipped: needs root (eBPF)")
        yield None
        return
    if rules is not None and not rules.exists():
        print(f"skipped: no rules file {rules} (set FALCO_RULES)")
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = export_tree(rev, Path(tmp) / "base")
        if base is None:
            print(f"skipped: no git or no revision {rev}")
        yield None if base is None else (base, Path(tmp))
