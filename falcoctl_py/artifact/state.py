"""Per-reference install state shared by install and follow (falcoctl's artifact-state files).

One JSON file per reference, ``<state-dir>/.falcoctl/artifact-state/<sha256(ref)>.json``, with
falcoctl's fields ``ref``, ``digest`` (the root digest: image index for plugins, manifest
otherwise) and ``updatedAt``, plus falcoctl-py's own fields (name, version, type, files) that
falcoctl ignores. Files are 0600 in a 0700 directory, written atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoctl_py.textio import write_atomic

log = logging.getLogger(__name__)

STATE_SUBDIR = Path(".falcoctl") / "artifact-state"


@dataclass(frozen=True, slots=True)
class InstalledFile:
    """A file an artifact put on disk: absolute path and sha256 (hex)."""

    path: str
    sha256: str


@dataclass(slots=True)
class ArtifactState:
    """What is installed for one reference."""

    ref: str
    digest: str
    updated_at: str = ""
    name: str = ""
    version: str = ""
    type: str = ""
    platform: str = ""
    manifest_digest: str = ""
    layer_digest: str = ""
    files: list[InstalledFile] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "updatedAt": self.updated_at,
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "platform": self.platform,
            "manifestDigest": self.manifest_digest,
            "layerDigest": self.layer_digest,
            "files": [{"path": f.path, "sha256": f.sha256} for f in self.files],
            "config": self.config,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ArtifactState:
        files = [
            InstalledFile(str(f.get("path", "")), str(f.get("sha256", "")))
            for f in raw.get("files") or ()
            if isinstance(f, dict)
        ]
        config = raw.get("config")
        return cls(
            ref=str(raw.get("ref", "")),
            digest=str(raw.get("digest", "")),
            updated_at=str(raw.get("updatedAt", "")),
            name=str(raw.get("name", "")),
            version=str(raw.get("version", "")),
            type=str(raw.get("type", "")),
            platform=str(raw.get("platform", "")),
            manifest_digest=str(raw.get("manifestDigest", "")),
            layer_digest=str(raw.get("layerDigest", "")),
            files=files,
            config=config if isinstance(config, dict) else {},
        )


def state_path(state_dir: Path, ref: str) -> Path:
    """Where the state of ``ref`` lives (the name is the sha256 of the reference string)."""
    return state_dir / STATE_SUBDIR / f"{hashlib.sha256(ref.encode()).hexdigest()}.json"


def load_state(state_dir: Path, ref: str) -> ArtifactState | None:
    """The recorded state of ``ref``, or None (a missing or unreadable file means none)."""
    path = state_path(state_dir, ref)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable state file %s: %s", path, err)
        return None
    if not isinstance(raw, dict) or raw.get("ref") != ref:
        return None
    return ArtifactState.from_json(raw)


def save_state(state_dir: Path, state: ArtifactState) -> Path:
    """Record ``state`` (stamping ``updated_at``), atomically, 0600 in a 0700 directory."""
    path = state_path(state_dir, state.ref)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.updated_at = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_atomic(path, json.dumps(state.to_json(), indent=2).encode() + b"\n", mode=0o600)
    return path


def list_states(state_dir: Path) -> list[ArtifactState]:
    """Every recorded state under ``state_dir``, sorted by reference."""
    folder = state_dir / STATE_SUBDIR
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict) and raw.get("ref"):
            out.append(ArtifactState.from_json(raw))
    return sorted(out, key=lambda s: s.ref)
