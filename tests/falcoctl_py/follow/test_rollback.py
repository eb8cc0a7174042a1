"""Rollback through the artifact transaction: the kept version comes back, digests are held."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from falcoctl_py.artifact.state import load_state
from falcoctl_py.artifact.transaction import Transaction
from falcoctl_py.errors import InstallError, NotFoundError
from falcoctl_py.follow.rollback import held_digests, rollback
from tests.falcoctl_py.artifact.test_transaction import REF, commit
from tests.falcoctl_py.artifact_helpers import visible


def test_rollback_needs_a_kept_version(tmp_path: Path) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    with pytest.raises(NotFoundError, match="no installed artifact named app"):
        rollback(state_dir=tx.state_dir, name="app")
    commit(tx, dest, {"a.yaml": b"a1"}, "1.0.0")
    with pytest.raises(NotFoundError, match="no previous version"):
        rollback(state_dir=tx.state_dir, name="app")


def test_rollback_toggles_and_holds_the_digest_rolled_back_from(tmp_path: Path) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    commit(tx, dest, {"a.yaml": b"a1", "b.yaml": b"b1"}, "1.0.0")
    old = load_state(tx.state_dir, REF)
    commit(tx, dest, {"a.yaml": b"a2"}, "2.0.0", keep_previous=True)
    new = load_state(tx.state_dir, REF)
    assert old is not None and new is not None and visible(dest) == ["a.yaml"]
    result = rollback(state_dir=tx.state_dir, name="app")
    assert (result.from_version, result.to_version) == ("2.0.0", "1.0.0")
    assert visible(dest) == ["a.yaml", "b.yaml"]
    assert (dest / "a.yaml").read_bytes() == b"a1" and (dest / "b.yaml").read_bytes() == b"b1"
    assert held_digests(tx.state_dir, REF) == {new.digest}
    again = rollback(state_dir=tx.state_dir, name="app")  # toggles and releases the hold
    assert again.to_version == "2.0.0" and (dest / "a.yaml").read_bytes() == b"a2"
    assert visible(dest) == ["a.yaml"]
    assert held_digests(tx.state_dir, REF) == {old.digest}


def test_damaged_kept_copy_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    dest, tx = tmp_path / "rules", Transaction(tmp_path / "state")
    commit(tx, dest, {"a.yaml": b"a1"}, "1.0.0")
    commit(tx, dest, {"a.yaml": b"a2"}, "2.0.0", keep_previous=True)
    kept = dest / ".falcoctl-py"
    (previous,) = kept.glob("*/previous")
    (previous / "a.yaml").write_bytes(b"tampered")
    with pytest.raises(InstallError, match="is damaged"):
        rollback(state_dir=tx.state_dir, name="app")
    assert (dest / "a.yaml").read_bytes() == b"a2"
    assert hashlib.sha256(b"a2").hexdigest() == load_state(tx.state_dir, REF).files[0].sha256  # type: ignore[union-attr]

