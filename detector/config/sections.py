"""The falco.yaml values with a shape of their own: plugins, ``rules:`` selectors,
``append_output`` entries and ``config_files`` entries, each read into a frozen dataclass."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from falcoctl_py.errors import ConfigError

STRATEGIES = ("append", "override", "add-only")

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """One entry of ``plugins``: how to load and open a plugin."""

    name: str
    library_path: str
    init_config: str = ""
    open_params: str = ""


@dataclass(frozen=True, slots=True)
class RuleSelector:
    """One ``rules:`` item: enable or disable rules by name wildcard or by tag."""

    action: str  # "enable" | "disable"
    rule: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class ExtraField:
    """One ``extra_fields`` item: a field name (raw), or ``name: format`` (formatted)."""

    name: str
    format: str
    raw: bool


@dataclass(frozen=True, slots=True)
class AppendOutput:
    """One ``append_output`` entry: what it matches and what it adds."""

    source: str = ""
    tags: frozenset[str] = frozenset()
    rule: str = ""
    extra_output: str = ""
    extra_fields: tuple[ExtraField, ...] = ()
    suggested_output: bool = False

    def applies(self, *, rule: str, source: str, tags: frozenset[str] | tuple[str, ...]) -> bool:
        """Falco's match: every condition given holds (tags: the rule has all of them)."""
        return ((not self.source or self.source == source) and self.tags <= set(tags)
                and (not self.rule or self.rule == rule))


@dataclass(frozen=True, slots=True)
class ConfigInclude:
    """One ``config_files`` entry: a file or a folder, merged with a strategy."""

    path: str
    strategy: str = "append"


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, dict | list) or value is None or isinstance(value, bool):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}",
                          hint="quote the value in falco.yaml")
    return str(value)


def _seq(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}",
                          hint="write it as a YAML list (- item)")
    return value


def _map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a map, got {type(value).__name__}",
                          hint="write it as a YAML map (key: value)")
    return value


def _warn_unknown(item: dict[str, Any], known: tuple[str, ...], where: str, warn: Warn) -> None:
    for key in item:
        if key not in known:
            warn(f"unknown configuration key '{where}.{key}' (ignored)")


def parse_plugins(value: Any, where: str, warn: Warn) -> tuple[PluginConfig, ...]:
    """``plugins``: name and library_path required; init_config a string or a map (as JSON)."""
    out = []
    for i, raw in enumerate(_seq(value, where)):
        at = f"{where}[{i}]"
        item = _map(raw, at)
        _warn_unknown(item, ("name", "library_path", "init_config", "open_params"), at, warn)
        name, lib = item.get("name"), item.get("library_path")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{at}.name: a plugin needs a name", hint="add `name: <plugin>`")
        if not isinstance(lib, str) or not lib:
            raise ConfigError(f"{at}.library_path: plugin {name!r} needs a library_path",
                              hint="give the .so path, or python:<entry point> for Python "
                                   "plugins")
        init = item.get("init_config")
        if isinstance(init, dict | list):
            init = json.dumps(init)
        elif init is None:
            init = ""
        elif not isinstance(init, str):
            raise ConfigError(f"{at}.init_config: expected a string or a map, got "
                              f"{type(init).__name__}",
                              hint="write init_config as a map or a JSON string")
        params = item.get("open_params")
        params = "" if params is None else _scalar(params, f"{at}.open_params")
        out.append(PluginConfig(name=name, library_path=lib, init_config=init,
                                open_params=params.strip()))
    return tuple(out)


def parse_selectors(value: Any, where: str, warn: Warn) -> tuple[RuleSelector, ...]:
    """``rules:``: ``- enable|disable: {rule: NAME-WILDCARD}`` or ``{tag: TAG}``."""
    out = []
    for i, raw in enumerate(_seq(value, where)):
        at = f"{where}[{i}]"
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in (
                "enable", "disable"):
            raise ConfigError(f"{at}: expected `enable:` or `disable:`",
                              hint='write e.g. `- disable: {rule: "*"}` or '
                                   "`- enable: {tag: network}`")
        action, body = next(iter(raw.items()))
        if not isinstance(body, dict) or not ({"rule", "tag"} & set(body)):
            raise ConfigError(f"{at}.{action}: expected a map with `rule` or `tag`",
                              hint=f"e.g. {{{action}: {{rule: NAME}}}} or "
                                   f"{{{action}: {{tag: TAG}}}}")
        _warn_unknown(body, ("rule", "tag"), f"{at}.{action}", warn)
        rule, tag = body.get("rule"), body.get("tag")
        out.append(RuleSelector(action=action,
                                rule=None if rule is None else _scalar(rule, f"{at}.rule"),
                                tag=None if tag is None else _scalar(tag, f"{at}.tag")))
    return tuple(out)


def _extra_fields(value: Any, where: str) -> tuple[ExtraField, ...]:
    out: list[ExtraField] = []
    for i, item in enumerate(_seq(value, where)):
        at = f"{where}[{i}]"
        if isinstance(item, dict) and len(item) == 1:
            name, fmt = next(iter(item.items()))
            out.append(ExtraField(_scalar(name, at), _scalar(fmt, f"{at}.{name}"), raw=False))
        elif isinstance(item, str) and item:
            name = item.removeprefix("%")
            out.append(ExtraField(name, f"%{name}", raw=True))
        else:
            raise ConfigError(f"{at}: expected a field name or a one-key map name: format",
                              hint="e.g. `- evt.hostname` or `- home: ${HOME}`")
        if sum(f.name == out[-1].name for f in out) > 1:
            raise ConfigError(f"{at}: field {out[-1].name!r} is defined twice",
                              hint="give each extra field once")
    return tuple(out)


def parse_append_output(value: Any, where: str, warn: Warn) -> tuple[AppendOutput, ...]:
    """``append_output``: entries of ``match`` (rule, source, tags) and what to add."""
    out = []
    for i, raw in enumerate(_seq(value, where)):
        at = f"{where}[{i}]"
        item = _map(raw, at)
        _warn_unknown(item, ("match", "extra_output", "extra_fields", "suggested_output"), at,
                      warn)
        match = _map(item.get("match") or {}, f"{at}.match")
        _warn_unknown(match, ("rule", "source", "tags"), f"{at}.match", warn)
        tags = match.get("tags") or []
        tags = [_scalar(t, f"{at}.match.tags[{n}]") for n, t in enumerate(_seq(tags,
                                                                               f"{at}.match.tags"))]
        suggested = item.get("suggested_output", False)
        if not isinstance(suggested, bool):
            from falcoctl_py.config import parse_bool

            suggested = parse_bool(suggested, f"{at}.suggested_output")
        entry = AppendOutput(
            source=_scalar(match.get("source", ""), f"{at}.match.source"),
            tags=frozenset(tags), rule=_scalar(match.get("rule", ""), f"{at}.match.rule"),
            extra_output=_scalar(item.get("extra_output") or "", f"{at}.extra_output"),
            extra_fields=_extra_fields(item.get("extra_fields") or [], f"{at}.extra_fields"),
            suggested_output=suggested,
        )
        if entry.rule and entry.tags:
            warn(f"{at}: matches rule {entry.rule!r} only when it has every tag of "
                 f"{sorted(entry.tags)}")
        out.append(entry)
    return tuple(out)


def parse_config_files(value: Any, where: str, warn: Warn) -> tuple[ConfigInclude, ...]:
    """``config_files``: paths, or ``{path, strategy}`` with append, override or add-only."""
    items = [value] if isinstance(value, str) else _seq(value, where)
    out = []
    for i, raw in enumerate(items):
        at = f"{where}[{i}]"
        if isinstance(raw, dict):
            _warn_unknown(raw, ("path", "strategy"), at, warn)
            if not raw.get("path"):
                raise ConfigError(f"{at}.path: a config_files entry needs a path",
                                  hint="write `- path: /etc/falco/config.d`")
            strategy = _scalar(raw.get("strategy") or "append", f"{at}.strategy")
            if strategy not in STRATEGIES:
                raise ConfigError(f"{at}.strategy: unknown strategy {strategy!r}",
                                  hint="use " + ", ".join(STRATEGIES))
            out.append(ConfigInclude(_scalar(raw["path"], f"{at}.path"), strategy))
        else:
            out.append(ConfigInclude(_scalar(raw, at)))
    return tuple(out)


__all__ = ["STRATEGIES", "AppendOutput", "ConfigInclude", "ExtraField", "PluginConfig",
           "RuleSelector"]
