"""Switch an artifact's whole file set, keep the previous set, and roll back to it.

A switch works on a staging directory inside the destination (made by install's staging):

1. the files of the version in place are copied (hard links when possible) into
   ``<state-dir>/.falcoctl-py/previous/<sha256(ref)>/`` with their state, for ``rollback``;
2. the files the new version dropped are listed in the stage (``REMOVE``), then install's
   commit journal lists the new files (``COMMIT``);
3. each new file is renamed into place, then the dropped files are removed.

An interrupted switch is finished by the next follow or install (the journal is install's, so
install's recovery renames the new files; follow's also removes the dropped ones). Callers hold
the state-directory lock (:mod:`falcoctl_py.artifact.lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falcoctl_py.artifact.archive import file_sha256
from falcoctl_py.artifact.install import (
    JOURNAL,
    STAGE_PREFIX,
    recover_staging,
    roll_forward,
    stage_owner_alive,
)
from falcoctl_py.artifact.state import ArtifactState, InstalledFile, list_states, save_state
from falcoctl_py.errors import InstallError, NotFoundError
from falcoctl_py.textio import fsync_dir, write_atomic

log = logging.getLogger(__name__)

OWN_SUBDIR = Path(".falcoctl-py")
REMOVE = "REMOVE"


def _ref_hash(ref: str) -> str:
    return hashlib.sha256(ref.encode()).hexdigest()


def previous_dir(state_dir: Path, ref: str) -> Path:
    """Where the previous version of ``ref`` is kept."""
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


def _rel(dest: Path, path: str) -> str:
    try:
        return str(Path(path).relative_to(dest))
    except ValueError:
        return Path(path).name


def _keep_previous(state_dir: Path, dest: Path, old: ArtifactState) -> None:
    """Copy the files of ``old`` (all present) and its state into the previous-version folder."""
    target = previous_dir(state_dir, old.ref)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=target.parent))
    try:
        for item in old.files:
            src = Path(item.path)
            out = tmp / "files" / _rel(dest, item.path)
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, out)
            except OSError:
                shutil.copy2(src, out)
        meta = {"dest": str(dest), "state": old.to_json()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if target.exists():
            gone = target.with_name(target.name + ".old")
            shutil.rmtree(gone, ignore_errors=True)
            os.replace(target, gone)
            shutil.rmtree(gone, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _intact_files(state: ArtifactState) -> bool:
    return bool(state.files) and all(file_sha256(Path(f.path)) == f.sha256 for f in state.files)


def switch(
    *,
    state_dir: Path,
    dest: Path,
    stage: Path,
    rels: list[str],
    old: ArtifactState | None,
) -> list[str]:
    """Replace the files of ``old`` in ``dest`` by ``stage/files/<rels>``; their new paths."""
    new_paths = {str(dest / rel) for rel in rels}
    dropped = [f.path for f in old.files if f.path not in new_paths] if old else []
    try:
        if old is not None and _intact_files(old):
            _keep_previous(state_dir, dest, old)
        with open(stage / REMOVE, "w") as handle:
            json.dump(dropped, handle)
            handle.flush()
            os.fsync(handle.fileno())
        with open(stage / JOURNAL, "w") as handle:
            json.dump(rels, handle)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(stage)
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        raise InstallError(f"cannot prepare the switch in {dest}: {err.strerror or err}") from None
    roll_forward(stage, dest)
    _remove(dropped, dest)
    return [str(dest / rel) for rel in rels]


def _remove(paths: list[str], dest: Path) -> None:
    for path in paths:
        target = Path(path)
        if dest.resolve() not in target.parent.resolve().parents and (
            target.parent.resolve() != dest.resolve()
        ):
            continue  # never remove anything outside the destination
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
            log.info("removed %s (dropped by the new version)", target)
    with contextlib.suppress(OSError):
        fsync_dir(dest)


def recover(dest: Path) -> None:
    """Finish switches interrupted in ``dest`` (removals included), then install's recovery."""
    if not dest.is_dir():
        return
    for stage in sorted(dest.glob(f"{STAGE_PREFIX}*")):
        if not (stage / REMOVE).is_file() or not (stage / JOURNAL).is_file():
            continue
        if stage_owner_alive(stage):
            continue
        try:
            dropped = json.loads((stage / REMOVE).read_text())
        except (OSError, ValueError):
            continue
        roll_forward(stage, dest)
        _remove([str(p) for p in dropped], dest)
    recover_staging(dest)


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


def _find(state_dir: Path, name: str) -> ArtifactState:
    states = [s for s in list_states(state_dir) if name in (s.name, s.ref)]
    with_previous = [s for s in states if (previous_dir(state_dir, s.ref) / "meta.json").is_file()]
    if not states:
        raise NotFoundError(
            f"no installed artifact named {name} in {state_dir}",
            hint="check the name and --state-dir",
        )
    if not with_previous:
        raise NotFoundError(
            f"{name} has no previous version kept in {state_dir}",
            hint="a previous version is kept when follow updates an artifact",
        )
    return with_previous[0]


def rollback(*, state_dir: Path, name: str) -> RollbackResult:
    """Put back the previous version of the artifact ``name`` (the current one becomes previous).

    The caller holds the state-directory lock. The digest rolled back from is held: follow
    does not reinstall it (a newer digest is followed again).
    """
    current = _find(state_dir, name)
    prev = previous_dir(state_dir, current.ref)
    try:
        meta: dict[str, Any] = json.loads((prev / "meta.json").read_text())
        dest = Path(str(meta["dest"]))
        before = ArtifactState.from_json(meta["state"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InstallError(
            f"the previous version of {name} in {prev} is unreadable: {err}"
        ) from None
    recover(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=dest))
        rels = []
        for item in before.files:
            rel = _rel(dest, item.path)
            src = prev / "files" / rel
            if file_sha256(src) != item.sha256:
                raise InstallError(
                    f"the kept copy of {rel} ({name} {before.version}) is damaged",
                    hint="reinstall the version you want with `falcoctl-py artifact install`",
                )
            out = stage / "files" / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
            rels.append(rel)
    except OSError as err:
        raise InstallError(f"cannot stage the previous version in {dest}: {err.strerror}") from None
    paths = switch(state_dir=state_dir, dest=dest, stage=stage, rels=rels, old=current)
    before.files = [InstalledFile(p, f.sha256) for p, f in zip(paths, before.files, strict=True)]
    before.ref = current.ref
    save_state(state_dir, before)
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
