"""Roll an artifact back to the version follow kept, and hold the digest rolled back from.

Follow commits with ``keep_previous`` (:mod:`falcoctl_py.artifact.transaction`): the generation
it replaced stays in the destination as ``previous``, described in
``<state-dir>/.falcoctl-py/versions/<sha256(ref)>.json``. A rollback copies that generation
(after checking every file's sha256) into a new one and commits it through the same
transaction, so the current version becomes the previous one. Versions kept by earlier
releases (``<state-dir>/.falcoctl-py/previous/<sha256(ref)>/``) are read too. Callers hold the
state-directory lock (:mod:`falcoctl_py.artifact.lock`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from falcoctl_py.artifact import layout
from falcoctl_py.artifact.archive import ExtractedFile, file_sha256
from falcoctl_py.artifact.state import ArtifactState, InstalledFile, list_states
from falcoctl_py.artifact.transaction import Staged, Transaction, open_stage, previous_meta
from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import FalcoctlPyError, InstallError, NotFoundError
from falcoctl_py.textio import write_atomic

log = logging.getLogger(__name__)

OWN_SUBDIR = Path(".falcoctl-py")


def _ref_hash(ref: str) -> str:
    return hashlib.sha256(ref.encode()).hexdigest()


def legacy_previous_dir(state_dir: Path, ref: str) -> Path:
    """Where earlier releases kept the previous version of ``ref``."""
    return state_dir / OWN_SUBDIR / "previous" / _ref_hash(ref)


def _held_path(state_dir: Path, ref: str) -> Path:
    return state_dir / OWN_SUBDIR / "held" / f"{_ref_hash(ref)}.json"


def held_digests(state_dir: Path, ref: str) -> set[str]:
    """Digests of ``ref`` that a rollback moved away from: follow does not reinstall them."""
    try:
        raw = json.loads(_held_path(state_dir, ref).read_text())
    except (OSError, ValueError):
        return set()
    return {str(d) for d in raw.get("digests", ())} if isinstance(raw, dict) else set()


def hold_digest(state_dir: Path, ref: str, digest: str, *, release: str = "") -> None:
    """Record that follow must not reinstall ``digest`` of ``ref`` (and may ``release``)."""
    digests = sorted((held_digests(state_dir, ref) | {digest}) - {release})
    path = _held_path(state_dir, ref)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"ref": ref, "digests": digests}).encode(), mode=0o600)


@dataclass(slots=True)
class RollbackResult:
    """What ``artifact rollback`` did."""

    name: str
    ref: str
    from_version: str
    to_version: str
    from_digest: str
    to_digest: str
    files: list[str]


@dataclass(frozen=True, slots=True)
class _Kept:
    """A kept version: its destination, state, and the folder holding its files."""

    dest: Path
    state: ArtifactState
    files: Path


def _kept(state_dir: Path, ref: str) -> _Kept | None:
    """The kept previous version of ``ref`` (None when there is none)."""
    meta = previous_meta(state_dir, ref)
    legacy = legacy_previous_dir(state_dir, ref)
    source = meta if meta.is_file() else legacy / "meta.json"
    if not source.is_file():
        return None
    try:
        raw = loads_json(source.read_bytes(), where=str(source))
        dest = Path(str(raw["dest"]))
        state = ArtifactState.from_json(raw["state"])
        if source is meta:
            gen = str(raw["generation"])
            if not layout.GENERATION_RE.match(gen):
                raise ValueError(f"bad generation {gen!r}")
            return _Kept(dest, state, layout.box(dest, ref) / gen)
        return _Kept(dest, state, legacy / "files")
    except (OSError, ValueError, KeyError, TypeError, FalcoctlPyError) as err:
        raise InstallError(
            f"the previous version of {ref} in {source} is unreadable: {err}"
        ) from None


def _find(state_dir: Path, name: str) -> ArtifactState:
    states = [s for s in list_states(state_dir) if name in (s.name, s.ref)]
    if not states:
        raise NotFoundError(
            f"no installed artifact named {name} in {state_dir}",
            hint="check the name and --state-dir",
        )
    for state in states:
        if previous_meta(state_dir, state.ref).is_file() or (
            legacy_previous_dir(state_dir, state.ref) / "meta.json"
        ).is_file():
            return state
    raise NotFoundError(
        f"{name} has no previous version kept in {state_dir}",
        hint="a previous version is kept when follow updates an artifact",
    )


def _stage_kept(kept: _Kept, key: str, name: str) -> Staged:
    """A new generation holding the kept files, each checked against its recorded sha256."""
    staged = open_stage(kept.dest, key)
    try:
        for item in kept.state.files:
            rel = layout.check_rel(
                os.path.relpath(item.path, kept.dest), where=f"kept version of {name}"
            )
            src = layout.real_file(kept.files, rel)
            if src is None or file_sha256(src) != item.sha256:
                raise InstallError(
                    f"the kept copy of {rel} ({name} {kept.state.version}) is damaged",
                    hint="reinstall the version you want with `falcoctl-py artifact install`",
                )
            out = layout.real_dirs(staged.generation, PurePosixPath(rel).parent) / Path(rel).name
            try:
                os.link(src, out)
            except OSError:
                shutil.copy2(src, out)
            mode = out.stat().st_mode & 0o777
            staged.files.append(ExtractedFile(rel, out.stat().st_size, item.sha256, mode))
    except OSError as err:
        staged.discard()
        raise InstallError(
            f"cannot stage the previous version in {kept.dest}: {err.strerror}"
        ) from None
    except BaseException:
        staged.discard()
        raise
    return staged


def rollback(*, state_dir: Path, name: str) -> RollbackResult:
    """Put back the previous version of the artifact ``name`` (the current one becomes previous).

    The caller holds the state-directory lock. The digest rolled back from is held: follow
    does not reinstall it (a newer digest is followed again).
    """
    current = _find(state_dir, name)
    tx = Transaction(state_dir)
    first = _kept(state_dir, current.ref)
    assert first is not None
    tx.recover({first.dest})
    kept = _kept(state_dir, current.ref)
    assert kept is not None
    staged = _stage_kept(kept, current.ref, name)
    before = kept.state
    before.ref = current.ref
    before.files = [
        InstalledFile(p, f.sha256) for p, f in zip(staged.paths(), staged.files, strict=True)
    ]
    paths = tx.commit(staged, before, old=current, keep_previous=True)
    hold_digest(state_dir, current.ref, current.digest, release=before.digest)
    log.info("rolled %s back from %s to %s", name, current.version, before.version)
    return RollbackResult(
        name=before.name or name,
        ref=current.ref,
        from_version=current.version,
        to_version=before.version,
        from_digest=current.digest,
        to_digest=before.digest,
        files=paths,
    )
