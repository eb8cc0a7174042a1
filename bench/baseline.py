"""Another git revision of this repository, unpacked beside the tree, for benchmarks that run
the old and the new code alternately in one run."""

from __future__ import annotations

import shutil
import subprocess
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
