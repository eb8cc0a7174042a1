"""Add installed artifacts to a falco.yaml: ``rules_files``, ``plugins`` and ``load_plugins``.

The file is edited round-trip (ruamel.yaml), so its comments, key order and quoting stay as
they were; it is replaced atomically with its permissions kept. Nothing is written when
everything is already listed. A rules file inside a directory that ``rules_files`` already
lists is covered by it and not added again. New rules files go before the first
``*.local.yaml`` entry (Falco loads in order, so local overrides keep applying last);
``plugins`` and ``load_plugins`` are created only when a plugin is added.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoctl_py.errors import ConfigError
from falcoctl_py.textio import roundtrip_yaml, write_atomic

# Falco's default rules_files: kept when the key is created, so adding a file does not drop them.
FALCO_DEFAULT_RULES_FILES = (
    "/etc/falco/falco_rules.yaml", "/etc/falco/falco_rules.local.yaml", "/etc/falco/rules.d",
)


@dataclass(slots=True)
class FalcoConfigUpdate:
    """What ``update_falco_config`` changed."""

    path: Path
    added_rules_files: list[str] = field(default_factory=list)
    added_plugins: list[str] = field(default_factory=list)
    updated_plugins: list[str] = field(default_factory=list)
    added_load_plugins: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added_rules_files or self.added_plugins or self.updated_plugins
                     or self.added_load_plugins)


def _seq(doc: Any, key: str, default: Sequence[str] = ()) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    value = doc.get(key)
    if value is None:
        value = CommentedSeq(list(default))
        doc[key] = value
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list, got {type(value).__name__}",
                          hint=f"make {key} a YAML list")
    return value


def _covered(entry: str, listed: list[str]) -> bool:
    p = Path(entry)
    for item in listed:
        q = Path(str(item))
        is_dir = q.suffix not in (".yaml", ".yml")
        if q == p or (p.suffix in (".yaml", ".yml") and p.parent == q and is_dir):
            return True
    return False


def _load(path: Path) -> tuple[Any, Any]:
    """The YAML handler and the parsed document of the falco.yaml at ``path``."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    y = roundtrip_yaml()
    try:
        text = path.read_text("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", path=str(path),
                          hint="give the falco.yaml to update") from err
    try:
        doc = y.load(text)
    except YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", path=str(path)) from err
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError("expected a map of keys at the top", path=str(path))
    for key in ("rules_file", "rules_files", "plugins", "load_plugins"):
        if doc.get(key) is not None and not isinstance(doc[key], list):
            raise ConfigError(f"{key}: expected a list, got {type(doc[key]).__name__}",
                              path=str(path), hint=f"make {key} a YAML list")
    return y, doc


def check_falco_config(path: Path) -> None:
    """Fail now, before anything is installed, if ``path`` could not be updated later."""
    _load(path)
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ConfigError("not writable", path=str(path),
                          hint="run as a user who may write the file and its folder")


def update_falco_config(
    path: Path,
    installed_rules_files: Sequence[str | os.PathLike[str]],
    installed_plugins: Mapping[str, str | os.PathLike[str]],
) -> FalcoConfigUpdate:
    """Add rules files and plugins (name -> library path) to the falco.yaml at ``path``."""
    from ruamel.yaml.comments import CommentedMap

    y, doc = _load(path)
    result = FalcoConfigUpdate(path=path)
    try:
        key = "rules_file" if "rules_file" in doc and "rules_files" not in doc else "rules_files"
        rules = _seq(doc, key, FALCO_DEFAULT_RULES_FILES)
        for f in installed_rules_files:
            entry = str(f)
            if not _covered(entry, [str(x) for x in rules]):
                rules.insert(_before_local(rules), entry)
                result.added_rules_files.append(entry)
        if not installed_plugins:
            return _write(y, doc, result)
        plugins = _seq(doc, "plugins")
        load = _seq(doc, "load_plugins")
        for name, lib in installed_plugins.items():
            existing = next((p for p in plugins if isinstance(p, dict) and p.get("name") == name),
                            None)
            if existing is None:
                entry_map = CommentedMap()
                entry_map["name"] = name
                entry_map["library_path"] = str(lib)
                entry_map["init_config"] = ""
                entry_map["open_params"] = ""
                plugins.append(entry_map)
                result.added_plugins.append(name)
            elif str(existing.get("library_path")) != str(lib):
                existing["library_path"] = str(lib)
                result.updated_plugins.append(name)
            if name not in [str(x) for x in load]:
                load.append(name)
                result.added_load_plugins.append(name)
    except ConfigError as err:
        raise ConfigError(err.message, path=str(path), hint=err.hint) from err
    return _write(y, doc, result)


def _before_local(rules: list[Any]) -> int:
    """Where a new rules file goes: before the first ``*.local.yaml`` entry, else at the end."""
    for i, item in enumerate(rules):
        if Path(str(item)).name.endswith((".local.yaml", ".local.yml")):
            return i
    return len(rules)


def _write(y: Any, doc: Any, result: FalcoConfigUpdate) -> FalcoConfigUpdate:
    """Write ``doc`` back (atomically, permissions kept) when something changed."""
    if not result.changed:
        return result
    out = io.StringIO()
    y.dump(doc, out)
    mode = result.path.stat().st_mode & 0o7777
    write_atomic(result.path, out.getvalue().encode("utf-8"), mode)
    return result
