"""The file-set switch: previous version kept, dropped files removed, interruptions finished."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from falcoctl_py.artifact.archive import file_sha256
from falcoctl_py.artifact.install import JOURNAL, STAGE_PREFIX
from falcoctl_py.artifact.state import ArtifactState, InstalledFile, save_state
from falcoctl_py.errors import NotFoundError
from falcoctl_py.follow.rollback import (
    REMOVE,
    held_digests,
    previous_dir,
    recover,
    rollback,
    switch,
)

REF = "h:1/rules/app:latest"


def stage_with(dest: Path, files: dict[str, bytes], pid: str = "999999999") -> Path:
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{pid}-", dir=dest))
    for rel, data in files.items():
        (stage / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / "files" / rel).write_bytes(data)
    return stage


def installed(state_dir: Path, dest: Path, files: dict[str, bytes], version: str) -> ArtifactState:
    dest.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (dest / rel).write_bytes(data)
    state = ArtifactState(
        ref=REF,
        digest=f"sha256:{version.replace('.', '') * 16}"[:71],
        name="app",
        version=version,
        type="rulesfile",
        files=[InstalledFile(str(dest / r), file_sha256(dest / r)) for r in files],
    )
    save_state(state_dir, state)
    return state


def test_switch_keeps_previous_and_removes_dropped(tmp_path: Path) -> None:
    dest, state_dir = tmp_path / "rules", tmp_path / "state"
    old = installed(state_dir, dest, {"a.yaml": b"a1", "b.yaml": b"b1"}, "1.0.0")
    stage = stage_with(dest, {"a.yaml": b"a2"})
    paths = switch(state_dir=state_dir, dest=dest, stage=stage, rels=["a.yaml"], old=old)
    assert paths == [str(dest / "a.yaml")]
    assert sorted(p.name for p in dest.iterdir()) == ["a.yaml"]
    assert (dest / "a.yaml").read_bytes() == b"a2"
    kept = previous_dir(state_dir, REF)
    assert (kept / "files" / "b.yaml").read_bytes() == b"b1"
    assert json.loads((kept / "meta.json").read_text())["state"]["version"] == "1.0.0"


def test_interrupted_switch_is_finished_by_recover(tmp_path: Path) -> None:
    dest = tmp_path / "rules"
    dest.mkdir()
    (dest / "a.yaml").write_bytes(b"a1")
    (dest / "b.yaml").write_bytes(b"b1")
    stage = stage_with(dest, {"a.yaml": b"a2"})  # pid 999999999: its owner is gone
    (stage / REMOVE).write_text(json.dumps([str(dest / "b.yaml")]))
    (stage / JOURNAL).write_text(json.dumps(["a.yaml"]))
    recover(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.yaml"]
    assert (dest / "a.yaml").read_bytes() == b"a2"


def test_rollback_needs_a_kept_version(tmp_path: Path) -> None:
    dest, state_dir = tmp_path / "rules", tmp_path / "state"
    with pytest.raises(NotFoundError, match="no installed artifact named app"):
        rollback(state_dir=state_dir, name="app")
    old = installed(state_dir, dest, {"a.yaml": b"a1"}, "1.0.0")
    with pytest.raises(NotFoundError, match="no previous version"):
        rollback(state_dir=state_dir, name="app")
    stage = stage_with(dest, {"a.yaml": b"a2"})
    switch(state_dir=state_dir, dest=dest, stage=stage, rels=["a.yaml"], old=old)
    new = ArtifactState(
        ref=REF, digest="sha256:" + "2" * 64, name="app", version="2.0.0", type="rulesfile",
        files=[InstalledFile(str(dest / "a.yaml"), file_sha256(dest / "a.yaml"))],
    )  # fmt: skip
    save_state(state_dir, new)
    result = rollback(state_dir=state_dir, name="app")
    assert (result.from_version, result.to_version) == ("2.0.0", "1.0.0")
    assert (dest / "a.yaml").read_bytes() == b"a1"
    assert held_digests(state_dir, REF) == {new.digest}
    # rolling back again toggles to the newer version and releases its hold
    again = rollback(state_dir=state_dir, name="app")
    assert again.to_version == "2.0.0" and (dest / "a.yaml").read_bytes() == b"a2"
    assert held_digests(state_dir, REF) == {old.digest}
