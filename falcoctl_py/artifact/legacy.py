"""Finish commits interrupted by earlier versions, which staged inside the destination.

Earlier versions staged in ``<dest>/.falcoctl-py-stage-<pid>-<x>/`` with a ``COMMIT`` journal
(a list of relative paths, or ``{"files": [...], "remove": [...]}``) and, for follow, a
``REMOVE`` list. Such a folder could also come from a hostile
archive extracted by those versions, so nothing in it is trusted: a journaled file is moved
only when its path is relative, inside ``dest``, not reserved, and both ends are real files and
folders (no link anywhere), and the target is not a link; nothing is ever removed (a stale
file is left behind rather than trusting a list of paths to delete). Then the folder goes.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path, PurePosixPath

from falcoctl_py.artifact import layout
from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import FalcoctlPyError, IntegrityError

log = logging.getLogger(__name__)

_MAX = 4 * 1024 * 1024


def recover_legacy(dest: Path) -> None:
    """Finish or discard every earlier-format staging folder in ``dest``."""
    for stage in sorted(dest.glob(".falcoctl-py-stage-*")):
        if not layout.is_real_dir(stage):
            continue  # the pid in the name is not checked: a planted name could keep it forever
        journal = layout.real_file(stage, "COMMIT")
        if journal is not None:
            try:
                _roll_forward(stage, dest)
            except (FalcoctlPyError, OSError, ValueError) as err:
                text = err.one_line() if isinstance(err, FalcoctlPyError) else str(err)
                log.warning("not finishing the earlier install in %s: %s", stage, text)
        shutil.rmtree(stage, ignore_errors=True)


def _read(path: Path) -> object:
    if path.stat().st_size > _MAX:
        raise IntegrityError(f"{path}: too large for a journal")
    return loads_json(path.read_bytes(), where=str(path))


def _roll_forward(stage: Path, dest: Path) -> None:
    raw = _read(stage / "COMMIT")
    rels = raw.get("files") if isinstance(raw, dict) else raw
    if not isinstance(rels, list):
        raise IntegrityError(f"{stage}/COMMIT: no file list")
    checked = [layout.check_rel(rel, where=f"{stage}/COMMIT") for rel in rels]
    for rel in checked:
        src = layout.real_file(stage / "files", rel)
        if src is None:
            continue  # moved before the interruption, or not a plain file: never followed
        target = layout.real_dirs(dest, PurePosixPath(rel).parent) / PurePosixPath(rel).name
        if os.path.lexists(target) and layout.real_file(dest, rel) is None:  # a link, a folder
            raise IntegrityError(f"{target} is not a plain file: not replaced")
        os.replace(src, target)
