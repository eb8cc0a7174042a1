"""The per-reference state files shared with follow."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

from falcoctl_py.artifact.state import (
    ArtifactState,
    InstalledFile,
    list_states,
    load_state,
    save_state,
)


def test_state_file_is_falcoctl_compatible(tmp_path: Path) -> None:
    ref = "ghcr.io/falcosecurity/rules/falco-rules:5"
    path = save_state(
        tmp_path,
        ArtifactState(
            ref=ref,
            digest="sha256:" + "1" * 64,
            name="falco-rules",
            version="5.0.0",
            type="rulesfile",
            files=[InstalledFile("/etc/falco/r.yaml", "ab")],
        ),
    )
    name = hashlib.sha256(ref.encode()).hexdigest()
    assert path == tmp_path / ".falcoctl" / "artifact-state" / f"{name}.json"
    raw = json.loads(path.read_text())
    assert raw["ref"] == ref and raw["digest"].startswith("sha256:") and raw["updatedAt"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load_state(tmp_path, ref)
    assert loaded is not None and loaded.files[0].path == "/etc/falco/r.yaml"
    assert [s.ref for s in list_states(tmp_path)] == [ref]


def test_missing_or_corrupt_state_is_none(tmp_path: Path) -> None:
    assert load_state(tmp_path, "x/y:1") is None
    save_state(tmp_path, ArtifactState(ref="x/y:1", digest="d"))
    path = next((tmp_path / ".falcoctl/artifact-state").glob("*.json"))
    path.write_text("{not json")
    assert load_state(tmp_path, "x/y:1") is None
