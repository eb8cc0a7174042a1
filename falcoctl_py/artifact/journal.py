"""The journal of one artifact transaction: what a commit does, written before it does it.

``<state-dir>/.falcoctl-py/journal/<tx>.json`` (format 2) names the destination, the reference,
the generation it replaces, the relative path and sha256 of every new file, the files the new
version drops (with another artifact owning them, if any) and the states to record. Reading one
back checks it all (:meth:`Journal.load`, :meth:`Journal.verify_files`): a journal is replayed
only when it names its own transaction and every path stays inside its destination.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falcoctl_py.artifact import layout
from falcoctl_py.artifact.archive import file_sha256
from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import IntegrityError

JOURNAL_DIR = Path(".falcoctl-py") / "journal"
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_TX_RE = re.compile(r"^[0-9]+-[0-9a-f]{12}$")
_MAX_JOURNAL = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """A relative path and its sha256 (and, for a dropped file, another artifact owning it)."""

    path: str
    sha256: str
    owner: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"path": self.path, "sha256": self.sha256}
        return {**out, "owner": self.owner} if self.owner else out


@dataclass(frozen=True, slots=True)
class Journal:
    """What one commit does; written before anything visible changes."""

    tx: str
    dest: str
    key: str
    from_gen: str
    keep_previous: bool
    files: tuple[Entry, ...]
    drop: tuple[Entry, ...]
    state: dict[str, Any]
    previous_state: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 2,
            "tx": self.tx,
            "dest": self.dest,
            "key": self.key,
            "from": self.from_gen,
            "keepPrevious": self.keep_previous,
            "files": [e.to_json() for e in self.files],
            "drop": [e.to_json() for e in self.drop],
            "state": self.state,
            "previousState": self.previous_state,
        }

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read and check a journal; raises IntegrityError naming the first problem."""
        where = str(path)
        if path.is_symlink() or path.stat().st_size > _MAX_JOURNAL:
            raise IntegrityError(f"{where}: not a journal this installer wrote")
        raw = loads_json(path.read_bytes(), where=where)
        if not isinstance(raw, dict) or raw.get("format") != 2:
            raise IntegrityError(f"{where}: unknown journal format")
        tx, dest, key = raw.get("tx"), raw.get("dest"), raw.get("key")
        if not (isinstance(tx, str) and _TX_RE.match(tx) and path.stem == tx):
            raise IntegrityError(f"{where}: the journal does not name its own transaction")
        if not (isinstance(dest, str) and os.path.isabs(dest) and isinstance(key, str) and key):
            raise IntegrityError(f"{where}: no absolute destination or reference")
        from_gen = raw.get("from") or ""
        if from_gen and not (isinstance(from_gen, str) and layout.GENERATION_RE.match(from_gen)):
            raise IntegrityError(f"{where}: bad previous generation {from_gen!r}")
        state, previous = raw.get("state"), raw.get("previousState")
        if not isinstance(state, dict) or state.get("ref") != key:
            raise IntegrityError(f"{where}: the state to record is not the journal's reference")
        files = _entries(raw.get("files"), where)
        expected = {str(Path(dest) / e.path) for e in files}
        recorded = {str(f.get("path")) for f in state.get("files") or () if isinstance(f, dict)}
        if recorded != expected:
            raise IntegrityError(f"{where}: the state lists other files than the journal")
        return cls(
            tx=tx,
            dest=dest,
            key=key,
            from_gen=str(from_gen),
            keep_previous=raw.get("keepPrevious") is True,
            files=files,
            drop=_entries(raw.get("drop"), where),
            state=state,
            previous_state=previous if isinstance(previous, dict) else None,
        )

    def verify_files(self) -> None:
        """Every staged file is a regular file of the generation with its recorded sha256."""
        dest = Path(self.dest)
        work = dest / layout.WORK
        folder = layout.box(dest, self.key)
        gen = folder / f"g-{self.tx}"
        if not (layout.is_real_dir(work) and layout.is_real_dir(folder)):
            raise IntegrityError(f"{gen}: the working folder is not the installer's")
        for entry in self.files:
            found = layout.real_file(gen, entry.path)
            if found is None or file_sha256(found) != entry.sha256:
                raise IntegrityError(f"{gen}/{entry.path}: missing or changed since staging")


def _entries(raw: object, where: str) -> tuple[Entry, ...]:
    if not isinstance(raw, list):
        raise IntegrityError(f"{where}: file list missing")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not SHA_RE.match(str(item.get("sha256", ""))):
            raise IntegrityError(f"{where}: a file without a sha256")
        rel = layout.check_rel(item.get("path"), where=where)
        out.append(Entry(rel, str(item["sha256"]), str(item.get("owner") or "")))
    return tuple(out)
