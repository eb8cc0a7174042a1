"""Rewriting ``falcoctl.yaml`` (``index add|remove``, ``registry auth gcp``, ``driver config``):
one key changed in place, comments, order, spellings and mode kept; owner-only when the file
holds a URL with credentials."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from falcoctl_py.config.load import config_from_data, read_config_file
from falcoctl_py.config.model import IndexRef
from falcoctl_py.errors import ConfigError
from falcoctl_py.textio import roundtrip_yaml, write_atomic

_USERINFO_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/@\s\"'<>]*@")


def _edit_file(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the config file's mapping and rewrite it atomically, keeping its
    comments, key order, spellings and mode (created with defaults first when missing)."""
    read_config_file(path, create=True)  # creates it, and reports malformed YAML clearly
    y = roundtrip_yaml()
    try:
        data = y.load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as err:
        raise ConfigError(f"cannot read: {err}", path=str(path)) from err
    if data is None:
        data = CommentedMap()
    change(data)
    out = io.StringIO()
    y.dump(data, out)
    text = out.getvalue()
    mode = path.stat().st_mode & 0o777
    if _USERINFO_URL.search(text):
        mode &= 0o600  # a URL with credentials: readable by the owner only
    try:
        write_atomic(path, text.encode(), mode=mode)
    except OSError as err:
        raise ConfigError(f"cannot write: {err.strerror}", path=str(path)) from err


def _key(data: dict[str, Any], key: str) -> str:
    """The spelling ``key`` already has in ``data`` (keys are case-insensitive), else ``key``."""
    return next((k for k in data if str(k).lower() == key.lower()), key)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    name = _key(data, key)
    value = data.get(name)
    if not isinstance(value, dict):
        value = {}
        data[name] = value
    return value


def save_indexes(path: Path, indexes: list[IndexRef]) -> None:
    """Make ``indexes:`` of the config file list ``indexes``, in that order, editing the items
    in place: comments (inline ones too), other keys and spellings are kept, and an empty
    backend is not written."""

    def change(data: dict[str, Any]) -> None:
        key = _key(data, "indexes")
        old = data.get(key)
        items = old if isinstance(old, list) else []
        by_name = {str(_get_ci(i, "name")): i for i in items if isinstance(i, dict)}
        wanted = []
        for ref in indexes:
            item = by_name.get(ref.name)
            if item is None:
                item = {"name": ref.name, "url": ref.url}
            else:
                item[_key(item, "url")] = ref.url
            backend_key = _key(item, "backend")
            if ref.backend:
                item[backend_key] = ref.backend
            elif not item.get(backend_key):
                item.pop(backend_key, None)
            wanted.append(item)
        if isinstance(old, list):
            keep = {id(i) for i in wanted}
            for index in reversed(range(len(old))):
                if id(old[index]) not in keep:
                    del old[index]
            for item in wanted:
                if all(item is not i for i in old):
                    old.append(item)
            order = {id(item): n for n, item in enumerate(wanted)}
            if [id(i) for i in old] != [id(i) for i in wanted]:
                old.sort(key=lambda i: order[id(i)])
        else:
            data[key] = wanted

    _edit_file(path, change)


def _get_ci(item: dict[str, Any], key: str) -> Any:
    return item.get(_key(item, key))


def add_gcp_registry(path: Path, registry: str) -> None:
    """Append ``{registry: ...}`` to ``registry.auth.gcp`` unless present, atomically."""

    def change(data: dict[str, Any]) -> None:
        auth = _section(_section(data, "registry"), "auth")
        name = _key(auth, "gcp")
        gcp = auth.get(name) or []
        if not any((g.get("registry") if isinstance(g, dict) else g) == registry for g in gcp):
            gcp.append({"registry": registry})
        auth[name] = gcp

    _edit_file(path, change)


def save_driver(path: Path, driver: Mapping[str, Any]) -> None:
    """Replace ``driver:`` in the config file, atomically."""

    def change(data: dict[str, Any]) -> None:
        data[_key(data, "driver")] = dict(driver)

    _edit_file(path, change)


def read_file_indexes(path: Path) -> list[IndexRef]:
    """The ``indexes:`` of the config file alone (no environment), for rewriting the file."""
    return config_from_data(read_config_file(path, create=True), env={}, path=path).indexes
