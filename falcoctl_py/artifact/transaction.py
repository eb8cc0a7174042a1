"""One artifact transaction for install, follow and rollback: stage, journal, switch, record.

1. **stage**: :func:`open_stage` makes a new generation folder ``g-<tx>`` in the artifact's
   working area of the destination (:mod:`.layout`); the caller writes the files there
   (download + extraction, or a copy of a kept version);
2. **journal** (the commit marker, :mod:`.journal`): :meth:`Transaction.commit` writes
   ``<state-dir>/.falcoctl-py/journal/<tx>.json`` (0600) with the destination, the relative paths
   and sha256 of every new file, the files the new version drops, and the state to record;
3. **switch**: links for new paths, then one rename of ``current`` (readers see the old set or
   the new one), optionally keeping the old generation as ``previous`` (follow, rollback);
4. **clean up**: files the new version drops are removed unless the user changed them or
   another artifact owns them (the same rule for every caller); old generations go;
5. **record** the state (shared with falcoctl's state files), then delete the journal.

Recovery (:meth:`Transaction.recover`, first thing under the state lock) replays journals only
after checking them: the journal lies in the state directory (no artifact writes there), names
its own generation (``g-<tx>``, owned by the transaction), every path is relative, inside the
destination and not reserved, and every staged file still has its recorded sha256. A journal
that fails a check is set aside and nothing it names is touched. Journals of earlier versions
(inside the destination) are handled by :mod:`.legacy` under the same rules.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from falcoctl_py.artifact import layout
from falcoctl_py.artifact.archive import ExtractedFile, file_sha256
from falcoctl_py.artifact.journal import JOURNAL_DIR, SHA_RE, Entry, Journal
from falcoctl_py.artifact.legacy import recover_legacy
from falcoctl_py.artifact.state import ArtifactState, list_states, save_state, state_path
from falcoctl_py.errors import FalcoctlPyError, IntegrityError
from falcoctl_py.textio import fsync_dir, write_atomic

log = logging.getLogger(__name__)

PREVIOUS_DIR = Path(".falcoctl-py") / "versions"


@dataclass(slots=True)
class Staged:
    """A generation being written for ``key`` in ``dest``."""

    key: str
    dest: Path
    tx: str
    files: list[ExtractedFile] = field(default_factory=list)

    @property
    def generation(self) -> Path:
        return layout.box(self.dest, self.key) / f"g-{self.tx}"

    @property
    def layer(self) -> Path:
        """Where the downloaded archive waits to be extracted (beside the generation)."""
        return layout.box(self.dest, self.key) / f"g-{self.tx}.layer"

    def path(self, rel: str) -> Path:
        return self.generation / rel

    def paths(self) -> list[str]:
        """The paths readers will use, ``dest/<rel>``, in the order of ``files``."""
        return [str(self.dest / f.path) for f in self.files]

    def discard(self) -> None:
        shutil.rmtree(self.generation, ignore_errors=True)
        self.layer.unlink(missing_ok=True)


def open_stage(dest: Path, key: str) -> Staged:
    """A new, empty generation folder for ``key`` in ``dest`` (raises OSError/InstallError)."""
    staged = Staged(key, dest, layout.new_tx())
    layout.real_dirs(dest, PurePosixPath(layout.WORK, layout.artifact_id(key)))
    staged.generation.mkdir(mode=0o755)
    return staged


def previous_meta(state_dir: Path, ref: str) -> Path:
    """Where the kept previous version of ``ref`` is described (its destination and state)."""
    return state_dir / PREVIOUS_DIR / state_path(state_dir, ref).name


class Transaction:
    """Commits staged generations and recovers interrupted ones, for one state directory.

    The caller holds the state-directory lock (:mod:`.lock`).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.journal_dir = state_dir / JOURNAL_DIR

    # -- commit -------------------------------------------------------------------------------

    def commit(
        self,
        staged: Staged,
        state: ArtifactState,
        *,
        old: ArtifactState | None,
        keep_previous: bool = False,
    ) -> list[str]:
        """Switch ``staged`` in, record ``state``; the paths readers use, in ``files`` order."""
        dest, key = staged.dest, staged.key
        current = layout.read_link(layout.box(dest, key) / layout.CURRENT)
        if old is not None and not current:
            current = _adopt(dest, key, old)
        new = {f.path for f in staged.files}
        states = list_states(self.state_dir)
        others = {f.path: s.ref for s in states if s.ref != key for f in s.files}
        drop = []
        for item in old.files if old is not None else ():
            rel = _relative(dest, item.path)
            if rel and rel not in new and SHA_RE.match(item.sha256):
                drop.append(Entry(rel, item.sha256, others.get(item.path, "")))
        journal = Journal(
            tx=staged.tx,
            dest=str(dest.absolute()),
            key=key,
            from_gen=current if layout.GENERATION_RE.match(current) else "",
            keep_previous=keep_previous and old is not None,
            files=tuple(Entry(f.path, f.sha256) for f in staged.files),
            drop=tuple(drop),
            state=state.to_json(),
            previous_state=old.to_json() if old is not None else None,
        )
        path = self.journal_dir / f"{staged.tx}.json"
        self.journal_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, json.dumps(journal.to_json()).encode(), mode=0o600)
        fsync_dir(self.journal_dir)
        self._apply(journal, path)
        return [str(dest / f.path) for f in staged.files]

    def _apply(self, journal: Journal, path: Path) -> None:
        """Do (or finish) what ``journal`` says; every step may run twice."""
        dest, key = Path(journal.dest), journal.key
        folder = layout.box(dest, key)
        gen = f"g-{journal.tx}"
        later = []
        unchanged: list[tuple[str, Path]] = []
        for entry in journal.files:
            link = dest / entry.path
            target = layout.link_target(entry.path, key)
            layout.real_dirs(dest, PurePosixPath(entry.path).parent)
            if layout.read_link(link) == target:
                unchanged.append((target, link))  # same link, new content behind it
                continue
            if os.path.lexists(link):
                later.append((target, link))  # replaced right after the switch
            else:
                layout.replace_with_link(target, link)  # dangles until the switch: not visible
        if layout.read_link(folder / layout.CURRENT) != gen:
            if journal.keep_previous and journal.from_gen and journal.previous_state:
                meta = {"dest": journal.dest, "generation": journal.from_gen}
                meta["state"] = journal.previous_state  # type: ignore[assignment]
                target_meta = previous_meta(self.state_dir, key)
                target_meta.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_atomic(target_meta, json.dumps(meta).encode(), mode=0o600)
                layout.replace_with_link(journal.from_gen, folder / layout.PREVIOUS)
            layout.replace_with_link(gen, folder / layout.CURRENT)  # the switch
            fsync_dir(folder)
            # Re-made in place (same target, one rename each) so that a watcher of the visible
            # folder (this detector's, Falco's) is told these files changed: the switch itself
            # happened in the installer's own area, which nobody watches.
            later.extend(unchanged)
        for target, link in later:
            layout.replace_with_link(target, link)
        for entry in journal.drop:
            _drop(dest, key, journal.from_gen, entry)
        for folder_touched in {dest, *((dest / e.path).parent for e in journal.files)}:
            fsync_dir(folder_touched)
        collect(folder)
        save_state(self.state_dir, ArtifactState.from_json(journal.state))
        path.unlink(missing_ok=True)  # not synced: a journal replayed twice does nothing more

    # -- recovery -----------------------------------------------------------------------------

    def recover(self, dests: Iterable[Path]) -> None:
        """Finish interrupted commits (checked journals only), then clear leftovers in ``dests``."""
        for path in sorted(self.journal_dir.glob("*.json")) if self.journal_dir.is_dir() else ():
            try:
                journal = Journal.load(path)
                journal.verify_files()
            except (FalcoctlPyError, OSError, ValueError) as err:
                text = err.one_line() if isinstance(err, FalcoctlPyError) else str(err)
                log.warning("not replaying the install journal %s: %s", path, text)
                os.replace(path, path.with_suffix(".refused"))
                continue
            log.info("finishing the interrupted install of %s in %s", journal.key, journal.dest)
            self._apply(journal, path)
        for dest in dests:
            if not layout.is_real_dir(dest):
                continue
            recover_legacy(dest)
            _clear_tmp(dest)
            work = dest / layout.WORK
            if layout.is_real_dir(work):
                for folder in work.iterdir():
                    if layout.is_real_dir(folder):
                        collect(folder)


def _relative(dest: Path, path: str) -> str:
    try:
        rel = Path(path).relative_to(dest).as_posix()
        return layout.check_rel(rel, where=str(dest))
    except (ValueError, IntegrityError):
        return ""


def _adopt(dest: Path, key: str, old: ArtifactState) -> str:
    """Move files an earlier version installed as plain files into a generation; its name."""
    rels = [_relative(dest, f.path) for f in old.files]
    if not old.files or not all(rels):
        return ""
    for rel, item in zip(rels, old.files, strict=True):
        found = layout.real_file(dest, rel)
        if found is None or file_sha256(found) != item.sha256:
            return ""  # changed or gone: nothing to adopt, the new version replaces them
    staged = open_stage(dest, key)
    for rel in rels:
        layout.real_dirs(staged.generation, PurePosixPath(rel).parent)
        try:
            os.link(dest / rel, staged.path(rel))
        except OSError:
            shutil.copy2(dest / rel, staged.path(rel))
    folder = layout.box(dest, key)
    layout.replace_with_link(staged.generation.name, folder / layout.CURRENT)
    for rel in rels:  # same content behind the link: no reader notices
        layout.replace_with_link(layout.link_target(rel, key), dest / rel)
    return staged.generation.name


def _drop(dest: Path, key: str, from_gen: str, entry: Entry) -> None:
    """Remove a file the new version no longer has; never one the user changed (kept as a
    plain file) or another artifact owns (handed over to that artifact's copy, or kept)."""
    link = dest / entry.path
    points_to = layout.read_link(link)
    if points_to and points_to != layout.link_target(entry.path, key):
        return  # someone else's link
    if not points_to:
        found = layout.real_file(dest, entry.path)
        if found is not None and not entry.owner and file_sha256(found) == entry.sha256:
            found.unlink()  # a plain file an earlier release installed, unchanged
            log.info("removed %s (dropped by the new version)", link)
        return
    if entry.owner:
        theirs = layout.link_target(entry.path, entry.owner)
        if (link.parent / theirs).is_file():
            layout.replace_with_link(theirs, link)
            return
    old = layout.real_file(layout.box(dest, key) / from_gen, entry.path) if from_gen else None
    if old is not None and (entry.owner or file_sha256(old) != entry.sha256):
        tmp = link.parent / f"{layout.TMP_PREFIX}{layout.new_tx()}"
        shutil.copy2(old, tmp)
        os.replace(tmp, link)
        log.info("kept %s: changed locally or owned by %s", link, entry.owner or "the user")
        return
    link.unlink(missing_ok=True)
    log.info("removed %s (dropped by the new version)", link)


def collect(folder: Path) -> None:
    """Remove generations of ``folder`` that are neither current nor previous nor being staged."""
    keep = {
        layout.read_link(folder / layout.CURRENT),
        layout.read_link(folder / layout.PREVIOUS),
    }
    for child in folder.iterdir():
        name = child.name
        base = name.removesuffix(".layer")
        if name in (layout.CURRENT, layout.PREVIOUS) or base in keep:
            continue
        if layout.GENERATION_RE.match(base) and layout.owner_alive(base):
            continue
        if layout.is_real_dir(child):
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _clear_tmp(dest: Path) -> None:
    for child in dest.iterdir():
        if child.name.startswith(layout.TMP_PREFIX) and not layout.is_real_dir(child):
            child.unlink(missing_ok=True)
