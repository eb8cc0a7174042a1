"""podman's containers from its on-disk state, for hosts that run no podman API service.

podman keeps each container's full configuration (name, image name and id, labels,
privileged, mounts, creation time) as a JSON document in its state database under the storage
root: ``libpod/bolt_state.db`` (BoltDB, podman 4) or ``db.sql`` (SQLite, podman 5). SQLite is
read through the standard library, read-only. BoltDB stores a value in consecutive pages, so the
container's JSON document is a contiguous run of bytes in the file: it is found by its
``"id":"<64 hex>"`` member and parsed from the ``{"spec":`` that opens it. Every read is bounded
(file size, document size, JSON depth) and the database is never written.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from detector.events import ContainerInfo
from detector.state.runtimes.docker import parse_time, set_image
from falcoctl_py.bounded import Limits, loads_json
from falcoctl_py.errors import FalcoctlPyError

MAX_DB = 256 * 1024 * 1024
MAX_DOC = 1024 * 1024
_LIMITS = Limits(max_bytes=MAX_DOC)


class PodmanStorage:
    """podman's state database under one storage root (``/var/lib/containers/storage``)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def config(self, full_id: str) -> dict[str, Any]:
        """The container's configuration document; LookupError if absent, OSError if unreadable."""
        if len(full_id) != 64 or not all(c in "0123456789abcdef" for c in full_id):
            raise LookupError(f"{full_id[:12]}: not a podman container id")
        sql = os.path.join(self.root, "db.sql")
        if os.path.exists(sql):
            found = _from_sqlite(sql, full_id)
            if found is not None:
                return found
        bolt = os.path.join(self.root, "libpod", "bolt_state.db")
        if os.path.exists(bolt):
            found = _from_bolt(bolt, full_id)
            if found is not None:
                return found
        raise LookupError(f"{full_id[:12]} unknown to podman storage at {self.root}")

    def fetch(self, info: ContainerInfo) -> None:
        """Fill ``info`` from podman's storage."""
        fill_from_podman_config(info, self.config(info.full_id))

    def close(self) -> None:
        """Nothing is kept open."""


def _from_sqlite(path: str, full_id: str) -> dict[str, Any] | None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        raise OSError(f"{path}: {exc}") from exc
    try:
        row = db.execute("SELECT JSON FROM ContainerConfig WHERE ID=?", (full_id,)).fetchone()
    except sqlite3.Error as exc:
        raise OSError(f"{path}: {exc}") from exc
    finally:
        db.close()
    if row is None:
        return None
    try:
        data = loads_json(row[0], where=path, limits=_LIMITS)
    except (ValueError, FalcoctlPyError) as exc:
        raise OSError(f"{path}: {exc}") from exc
    return data if isinstance(data, dict) else None


def _from_bolt(path: str, full_id: str) -> dict[str, Any] | None:
    if os.path.getsize(path) > MAX_DB:
        raise OSError(f"{path}: larger than {MAX_DB} bytes")
    with open(path, "rb") as f:
        data = f.read(MAX_DB)
    needle = b'"id":"' + full_id.encode() + b'"'
    at = data.find(needle)
    while at >= 0:
        start = data.rfind(b'{"spec":', max(0, at - MAX_DOC), at)
        if start >= 0:
            doc = _document(data, start, path)
            if doc is not None and doc.get("id") == full_id:
                return doc
        at = data.find(needle, at + 1)
    return None


def _document(data: bytes, start: int, where: str) -> dict[str, Any] | None:
    chunk = data[start : start + MAX_DOC].decode("utf-8", "replace")
    try:
        _, end = json.JSONDecoder().raw_decode(chunk)
    except (ValueError, RecursionError):
        return None
    try:
        doc = loads_json(chunk[:end], where=where, limits=_LIMITS)  # depth and size bounded
    except FalcoctlPyError:
        return None
    return doc if isinstance(doc, dict) else None


def fill_from_podman_config(info: ContainerInfo, cfg: dict[str, Any]) -> None:
    """Set ``info``'s metadata from a libpod container configuration document."""
    spec = cfg.get("spec") or {}
    info.labels = {str(k): str(v) for k, v in (cfg.get("labels") or {}).items()}
    info.mounts = [(str(m.get("source", "")), str(m.get("destination", "")))
                   for m in spec.get("mounts") or [] if isinstance(m, dict)
                   and str(m.get("source", "")).startswith("/")]
    info.privileged = bool(cfg.get("privileged", False))
    info.start_ts = parse_time(str(cfg.get("createdTime") or "")) or None
    image = str(cfg.get("rootfsImageName") or cfg.get("RawImageName") or "")
    set_image(info, image, str(cfg.get("rootfsImageID") or ""))
    info.name = str(cfg.get("name") or "") or None
