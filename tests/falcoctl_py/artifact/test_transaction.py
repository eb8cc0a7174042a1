"""The artifact transaction: one switch, dropped files, replayed and refused journals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from falcoctl_py.artifact import layout
from falcoctl_py.artifact.archive import ExtractedFile
from falcoctl_py.artifact.journal import JOURNAL_DIR
from falcoctl_py.artifact.state import ArtifactState, InstalledFile, load_state, save_state
from falcoctl_py.artifact.transaction import Staged, Transaction, open_stage
from tests.falcoctl_py.artifact_helpers import visible

REF = "127.0.0.1:5000/rulesfiles/app:latest"


def stage(dest: Path, files: dict[str, bytes], key: str = REF) -> Staged:
    staged = open_stage(dest, key)
    for rel, data in files.items():
        path = staged.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        staged.files.append(ExtractedFile(rel, len(data), hashlib.sha256(data).hexdigest(), 0o644))
    return staged


def state_of(staged: Staged, version: str) -> ArtifactState:
    return ArtifactState(
        ref=staged.key,
        digest="sha256:" + version.replace(".", "") * 21 + "0",
        name="app",
        version=version,
        type="rulesfile",
        files=[
            InstalledFile(p, f.sha256) for p, f in zip(staged.paths(), staged.files, strict=True)
        ],
    )


def commit(tx: Transaction, dest: Path, files: dict[str, bytes], version: str, **kw: bool) -> None:
    staged = stage(dest, files)
    tx.commit(staged, state_of(staged, version), old=load_state(tx.state_dir, REF), **kw)


def test_switch_removes_dropped_files_but_keeps_user_edits(tmp_path: Path) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    commit(tx, dest, {"a.yaml": b"a1", "b.yaml": b"b1", "sub/c.yaml": b"c1"}, "1.0.0")
    assert visible(dest) == ["a.yaml", "b.yaml", "sub"]
    (dest / "sub" / "c.yaml").write_bytes(b"edited by the user")  # through the link
    commit(tx, dest, {"a.yaml": b"a2"}, "1.1.0")
    assert visible(dest) == ["a.yaml", "sub"]
    assert (dest / "a.yaml").read_bytes() == b"a2"
    assert (dest / "sub" / "c.yaml").read_bytes() == b"edited by the user"
    assert not (dest / "sub" / "c.yaml").is_symlink()  # kept as the user's own file
    state = load_state(tx.state_dir, REF)
    assert state is not None and state.version == "1.1.0"
    assert not list((tx.state_dir / JOURNAL_DIR).iterdir())
    # only the current generation is left in the working area
    assert len([p for p in layout.box(dest, REF).iterdir() if p.name.startswith("g-")]) == 1


def test_dropped_file_another_artifact_owns_is_kept(tmp_path: Path) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    commit(tx, dest, {"a.yaml": b"a1", "shared.yaml": b"s"}, "1.0.0")
    other = ArtifactState(
        ref="127.0.0.1:5000/rulesfiles/other:1",
        digest="sha256:" + "9" * 64,
        files=[InstalledFile(str(dest / "shared.yaml"), hashlib.sha256(b"s").hexdigest())],
    )
    save_state(tx.state_dir, other)
    commit(tx, dest, {"a.yaml": b"a2"}, "1.1.0")
    assert visible(dest) == ["a.yaml", "shared.yaml"]


def test_interrupted_switch_shows_old_set_then_recovery_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    commit(tx, dest, {"a.yaml": b"a1", "b.yaml": b"b1"}, "1.0.0")
    real = layout.replace_with_link

    def dies_at_switch(target: str, link: Path) -> None:
        if link.name == layout.CURRENT:
            raise KeyboardInterrupt  # killed right after the journal (the commit marker)
        real(target, link)

    monkeypatch.setattr(layout, "replace_with_link", dies_at_switch)
    with pytest.raises(KeyboardInterrupt):
        commit(tx, dest, {"a.yaml": b"a2", "b.yaml": b"b2", "new.yaml": b"n2"}, "2.0.0")
    # a reader sees the whole old set: the new file's link dangles until the switch
    assert [(dest / n).read_bytes() for n in ("a.yaml", "b.yaml")] == [b"a1", b"b1"]
    assert not (dest / "new.yaml").exists()
    monkeypatch.setattr(layout, "replace_with_link", real)
    tx.recover({dest})
    assert [(dest / n).read_bytes() for n in ("a.yaml", "b.yaml", "new.yaml")] == [
        b"a2",
        b"b2",
        b"n2",
    ]
    state = load_state(tx.state_dir, REF)
    assert state is not None and state.version == "2.0.0"


def _journal(tx: Transaction, dest: Path, rels: list[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real journal left by a commit that died right after writing it."""
    monkeypatch.setattr(Transaction, "_apply", lambda self, j, p: None)
    staged = stage(dest, {"a.yaml": b"a2"})
    tx.commit(staged, state_of(staged, "2.0.0"), old=None)
    monkeypatch.undo()
    (path,) = (tx.state_dir / JOURNAL_DIR).glob("*.json")
    return path


@pytest.mark.parametrize("attack", ["outside", "foreign_generation", "changed_file"])
def test_tampered_journal_is_set_aside_and_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attack: str
) -> None:
    dest, tx = tmp_path / "etc" / "falco", Transaction(tmp_path / "state")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = _journal(tx, dest, ["a.yaml"], monkeypatch)
    raw = json.loads(path.read_text())
    if attack == "outside":
        raw["files"][0]["path"] = "../../cron.d/evil"
        raw["drop"] = [{"path": str(victim), "sha256": hashlib.sha256(b"keep me").hexdigest()}]
    elif attack == "foreign_generation":
        raw["tx"] = "1-000000000000"
    else:
        gen = layout.box(dest, REF) / f"g-{raw['tx']}"
        (gen / "a.yaml").write_bytes(b"swapped after staging")
    path.write_text(json.dumps(raw))
    tx.recover({dest})
    assert not (tmp_path / "cron.d").exists() and victim.read_text() == "keep me"
    assert not (dest / "a.yaml").exists()
    assert path.with_suffix(".refused").is_file() and not path.exists()


def test_earlier_release_staging_planted_by_an_archive_is_not_obeyed(tmp_path: Path) -> None:
    """A ``.falcoctl-py-stage-*`` folder left by an earlier release (or its hostile archive)."""
    dest = tmp_path / "etc" / "falco"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    stage_dir = dest / ".falcoctl-py-stage-1-x"
    (stage_dir / "files" / "x").mkdir(parents=True)
    (stage_dir / "files" / "x" / "evil").write_text("* * * * * root sh\n")
    (stage_dir / "files" / "ok.yaml").write_text("- list: ok\n")
    journal = {
        "files": ["../../cron.d/evil", "ok.yaml"],
        "remove": [[str(victim), hashlib.sha256(b"keep me").hexdigest()]],
    }
    (stage_dir / "COMMIT").write_text(json.dumps(journal))
    Transaction(tmp_path / "state").recover({dest})
    assert not (tmp_path / "cron.d").exists() and not (tmp_path / "etc" / "cron.d").exists()
    assert victim.read_text() == "keep me"
    assert not stage_dir.exists() and not (dest / "ok.yaml").exists()


def test_earlier_release_journal_is_rolled_forward(tmp_path: Path) -> None:
    dest = tmp_path / "rules"
    stage_dir = dest / ".falcoctl-py-stage-999999999-abc"
    (stage_dir / "files").mkdir(parents=True)
    (stage_dir / "files" / "a.yaml").write_bytes(b"a2")
    (stage_dir / "COMMIT").write_text(json.dumps({"files": ["a.yaml"], "remove": []}))
    Transaction(tmp_path / "state").recover({dest})
    assert (dest / "a.yaml").read_bytes() == b"a2" and visible(dest) == ["a.yaml"]


def test_links_are_relative_so_another_mount_sees_the_files(tmp_path: Path) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    commit(tx, dest, {"x/a.yaml": b"a1"}, "1.0.0")
    target = os.readlink(dest / "x" / "a.yaml")
    assert not target.startswith("/") and target.startswith("../.falcoctl-py/")
    moved = tmp_path / "elsewhere"
    os.rename(dest, moved)
    assert (moved / "x" / "a.yaml").read_bytes() == b"a1"
