"""Read falco.yaml as Falco does: the main file (or the embedded default), ``${VAR}`` expanded
in every file, ``-o config_files=...`` first, then the ``config_files`` merged in order, then
every other ``-o`` (they beat everything), then ``-r`` files; the result checked into the
typed model once.

``config_files`` entries are files or folders (a folder's regular files in lexicographic
order), merged with a strategy: ``append`` (the default: a list value is appended to the
list already there, any other value replaces it), ``override`` (the value replaces the one
there) or ``add-only`` (only keys not set yet are taken). Entries that do not exist are
skipped, as Falco does; an included file may not hold ``config_files`` itself.

``${VAR}`` in a string value becomes the variable's value (empty when unset); ``$${VAR}`` is
the escape and gives ``${VAR}`` literally; a ``${`` with no closing ``}`` is left as it is. As
in Falco, a ``$`` that starts neither form ends expansion for the rest of that value. Unlike
Falco, a variable's value is not expanded again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from detector.config.build import build
from detector.config.model import FalcoConfig
from detector.config.overrides import apply_override, override_key
from detector.config.paths import default_text
from detector.config.sections import ConfigInclude, parse_config_files
from falcoctl_py.bounded import InputLimitError, Limits, safe_load_yaml
from falcoctl_py.errors import ConfigError

log = logging.getLogger("detector.config")

EMBEDDED = "<embedded falco.yaml>"
LIMITS = Limits(max_bytes=4 * 1024 * 1024, max_depth=64, max_nodes=200_000)


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """Falco's ``${VAR}`` expansion of one string value (see the module docstring)."""
    pos = value.find("$")
    while pos != -1:
        if value.startswith("${", pos):
            end = value.find("}", pos)
            if end == -1:
                break
            replacement = env.get(value[pos + 2:end], "")
            value = value[:pos] + replacement + value[end + 1:]
            pos += len(replacement)
        elif value.startswith("$${", pos):
            if value.find("}", pos) == -1:
                break
            value = value[:pos] + value[pos + 1:]
            pos += 1
        else:
            break
        pos = value.find("$", pos)
    return value


def _expand_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return expand_env(node, env) if "$" in node else node
    if isinstance(node, list):
        return [_expand_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _expand_tree(v, env) for k, v in node.items()}
    return node


def read_yaml_file(path: Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    """One config file as a dict with ``${VAR}`` expanded (``None``: the embedded default)."""
    where = EMBEDDED if path is None else str(path)
    try:
        text = default_text() if path is None else path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"cannot read the configuration: {reason}", path=where,
                          hint="give an existing, readable falco.yaml") from err
    try:
        raw = safe_load_yaml(text, where=where, limits=LIMITS)
    except InputLimitError as err:
        raise ConfigError(err.message, hint="falco.yaml is a small map of settings") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: a number too long to read
        detail = " ".join(str(err).replace(' in "<unicode string>"', "").split())
        raise ConfigError(f"not valid YAML: {detail}", path=where,
                          hint="fix the YAML syntax at the position shown") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("expected a map of keys at the top", path=where,
                          hint="falco.yaml holds keys such as rules_files: and json_output:")
    return dict(_expand_tree(raw, env))


def _merge(root: dict[str, Any], extra: dict[str, Any], strategy: str) -> None:
    for key, value in extra.items():
        if strategy == "add-only":
            if root.get(key) is None:
                root[key] = value
        elif strategy == "append" and isinstance(value, list):
            current = root.get(key)
            root[key] = (list(current) if isinstance(current, list) else []) + value
        else:
            root[key] = value


def _include_files(entry: ConfigInclude, main: Path | None) -> tuple[list[Path], Path | None]:
    """(files to merge, the folder when the entry is one)."""
    p = Path(os.path.abspath(entry.path))
    if main is not None and p == main:
        raise ConfigError(f"config_files: {entry.path!r} is the main configuration file",
                          hint="config_files lists other files or folders")
    if p.is_file():
        return [p], None
    if p.is_dir():
        try:
            children = sorted(c for c in p.iterdir() if c.is_file())
        except OSError as err:
            raise ConfigError(f"config_files: cannot list {entry.path!r}: {err.strerror}",
                              hint="make the folder readable") from err
        return children, p
    return [], None  # Falco skips entries that do not exist


def merge_config_files(raw: dict[str, Any], main: Path | None,
                       env: Mapping[str, str]) -> tuple[list[Path], list[Path]]:
    """Merge ``raw['config_files']`` into ``raw``; return (files merged, folders read)."""
    entries = parse_config_files(raw.get("config_files") or [], "config_files", lambda _: None)
    files: list[Path] = []
    folders: list[Path] = []
    for entry in entries:
        paths, folder = _include_files(entry, main)
        if folder is not None:
            folders.append(folder)
        for path in paths:
            extra = read_yaml_file(path, env)
            if "config_files" in extra:
                raise ConfigError("config_files in an included file: included files include "
                                  "nothing further", path=str(path),
                                  hint="list every file in the main falco.yaml's config_files")
            _merge(raw, extra, entry.strategy)
            files.append(path)
    return files, folders


def load_config(
    *,
    path: Path | None = None,
    overrides: list[str] | None = None,
    rules_files: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> FalcoConfig:
    """falco.yaml (or the embedded default) + config_files + ``-o`` + ``-r``, checked."""
    env = os.environ if env is None else env
    main = Path(os.path.abspath(path)) if path is not None else None
    where = EMBEDDED if main is None else str(main)
    raw = read_yaml_file(main, env)
    overrides = list(overrides or [])
    first = [o for o in overrides if override_key(o).startswith("config_files")]
    for option in first:
        apply_override(raw, option)
    included, folders = merge_config_files(raw, main, env)
    for option in overrides:
        if option not in first:
            apply_override(raw, option)
    if rules_files:
        raw.pop("rules_file", None)
        raw["rules_files"] = [os.path.abspath(r) for r in rules_files]  # -r: from the cwd
    warnings: list[str] = []

    def note(text: str) -> None:
        if text not in warnings:
            warnings.append(text)

    try:
        config: FalcoConfig = build(FalcoConfig, raw, "", note)
    except ConfigError as err:
        raise ConfigError(err.message, path=where, hint=err.hint) from None
    if "rules_files" not in raw and config.rules_file:
        config = dataclasses.replace(config, rules_files=config.rules_file)
    if main is not None or any(override_key(o).startswith("rules_file") for o in overrides):
        # As Falco opens them: a relative entry from the current directory, not the config's
        # (only the embedded default's names resolve in the package's data folder).
        config = dataclasses.replace(config, rules_files=tuple(
            os.path.abspath(r) for r in config.rules_files))
    for text in warnings:
        (warn or log.warning)(f"{where}: {text}")
    return dataclasses.replace(
        config, path=main, files=tuple([main] if main else []) + tuple(included),
        folders=tuple(folders), warnings=tuple(warnings))
