"""Rules whose ``source`` is a plugin's event source, bound to that plugin's fields.

The syscall rules engine (detector.rules) knows the built-in fields only, so rules of plugin
sources are compiled here with the same parser and condition compiler, over a field provider
that reads the plugins' fields (extracted lazily, per event) plus ``evt.*``. Lists and macros
are resolved as Falco does (list names substituted as text, macros by their trees); a rule with
``exceptions`` is refused with a clear error. Outputs substitute ``%field`` tokens the same way
(``<NA>`` for missing values, native types in ``output_fields``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.outputs.format import InternalAlert, hostname, text_time
from detector.plugins.base import Plugin
from falcoctl_py.errors import FalcoctlPyError, LocatedError

_FTYPE_NAMES = {"uint64": "UINT64", "string": "CHARBUF", "bool": "BOOL", "reltime": "RELTIME",
                "abstime": "ABSTIME", "ipaddr": "IPADDR", "ipnet": "IPNET"}
_PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational",
               "debug")
_TOKEN = re.compile(r"%([A-Za-z0-9_.]+(?:\[[^\]]*\])?)")


@dataclass(slots=True)
class PluginRule:
    """A compiled rule of a plugin source."""

    name: str
    source: str
    priority: int
    tags: tuple[str, ...]
    output: str
    condition: Any  # a detector.rules.compiler.CompiledCondition over the plugin fields


def _priority(text: str, where: str) -> int:
    low = str(text).strip().lower()
    low = "informational" if low == "info" else low
    if low not in _PRIORITIES:
        raise LocatedError(f"unknown priority {text!r}", path=where)
    return _PRIORITIES.index(low)


class _Defs:
    def __init__(self) -> None:
        self.lists: dict[str, list[str]] = {}
        self.macros: dict[str, str] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.used: set[str] = set()  # lists and macros the plugin rules refer to


def _read(files: Iterable[Path], sources: set[str]) -> _Defs:
    from detector.rules.yamlload import YamlError, load_documents, mark_of

    defs = _Defs()
    for path in files:
        try:
            docs = load_documents(path.read_text("utf-8"))
        except (OSError, YamlError) as err:
            raise LocatedError(f"cannot read rules: {err}", path=str(path)) from err
        for doc in docs:
            for item in doc if isinstance(doc, list) else []:
                if not isinstance(item, dict):
                    continue
                line = mark_of(item).line + 1
                append = str(item.get("append", "false")).lower() == "true"
                if "list" in item:
                    items = [str(i) for i in item.get("items") or []]
                    name = str(item["list"])
                    defs.lists[name] = defs.lists.get(name, []) + items if append else items
                elif "macro" in item:
                    name = str(item["macro"])
                    cond = str(item.get("condition", ""))
                    defs.macros[name] = (f"{defs.macros[name]} {cond}" if append and
                                         name in defs.macros else cond)
                elif "rule" in item:
                    name = str(item["rule"])
                    prev = defs.rules.get(name)
                    if prev is not None and (append or "override" in item):
                        _merge(prev, item)
                        continue
                    if str(item.get("source", "syscall")) not in sources:
                        continue
                    if item.get("exceptions"):
                        raise LocatedError(f"rule {name!r}: exceptions are not supported for "
                                           "plugin sources yet", path=str(path), line=line,
                                           hint="write the exception into the condition")
                    defs.rules[name] = {**item, "_where": (str(path), line)}
    return defs


def _merge(prev: dict[str, Any], item: dict[str, Any]) -> None:
    override = item.get("override") or {}
    for key in ("condition", "output", "desc", "priority", "tags", "enabled"):
        if key not in item:
            continue
        mode = override.get(key, "append") if isinstance(override, dict) else "append"
        if mode == "replace" or key in ("priority", "enabled"):
            prev[key] = item[key]
        elif key == "tags":
            prev[key] = [*(prev.get(key) or []), *item[key]]
        else:
            prev[key] = f"{prev.get(key, '')} {item[key]}"


def _provider(fields: dict[str, Plugin]) -> Any:
    from detector.rules.fields import MappingProvider

    types: dict[str, str] = {}
    for name, plugin in fields.items():
        for f in plugin.info.fields:
            if f.name == name:
                types[name] = _FTYPE_NAMES.get(f.type, "CHARBUF")
    return MappingProvider(types=types, lists=frozenset(
        n for n, p in fields.items() for f in p.info.fields if f.name == n and f.is_list))


def _expand(cond: str, defs: _Defs, where: tuple[str, int]) -> Any:
    from detector.rules.ast import And, Identifier, Not, Or
    from detector.rules.errors import ConditionSyntaxError
    from detector.rules.parser import parse
    from detector.rules.rewrite import resolve_list

    def substitute(text: str) -> str:
        for name, items in defs.lists.items():
            if name in text:
                text, used = resolve_list(text, name, items)
                if used:
                    defs.used.add(name)
        return text

    trees: dict[str, Any] = {}

    def resolve(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, Identifier):
            if node.name not in defs.macros:
                raise LocatedError(f"Undefined macro '{node.name}' used in filter.",
                                   path=where[0], line=where[1])
            if node.name in stack:
                raise LocatedError(f"reference loop in macro '{node.name}'", path=where[0],
                                   line=where[1])
            defs.used.add(node.name)
            if node.name not in trees:
                trees[node.name] = parse(substitute(defs.macros[node.name]))
            return resolve(trees[node.name], (*stack, node.name))
        if isinstance(node, And | Or):
            return type(node)(tuple(resolve(c, stack) for c in node.children), node.pos)
        if isinstance(node, Not):
            return Not(resolve(node.child, stack), node.pos)
        return node

    try:
        return resolve(parse(substitute(cond)), ())
    except ConditionSyntaxError as err:  # the parser's error, placed at the rule
        raise LocatedError(err.bare_message, path=where[0], line=where[1]) from err


def compile_plugin_rules(
    files: list[Path], extractors: dict[str, dict[str, Plugin]], *, min_priority: int = 7,
    selectors: Iterable[Any] = (), rule_matching: str = "first", iso: bool = False,
) -> tuple[dict[str, PluginRulesEngine], set[str]]:
    """One engine per plugin source that has rules, and the list and macro names they use."""
    # Errors are raised as ``path:line: message`` (LocatedError).
    from detector.rules.compiler import CompiledCondition

    defs = _read(files, set(extractors))
    by_source: dict[str, list[PluginRule]] = {}
    providers = {src: _provider(fields) for src, fields in extractors.items()}
    for name, item in defs.rules.items():
        source = str(item.get("source", "syscall"))
        where = item["_where"]
        enabled = str(item.get("enabled", "true")).lower() != "false"
        tags = tuple(sorted(str(t) for t in item.get("tags") or []))
        for sel in selectors:
            if (sel.rule is not None and fnmatch.fnmatchcase(name, sel.rule)) or \
                    (sel.tag is not None and sel.tag in tags):
                enabled = sel.action == "enable"
        prio = _priority(str(item.get("priority", "debug")), where[0])
        if not enabled or prio > min_priority:
            continue
        tree = _expand(str(item.get("condition", "")), defs, where)
        try:
            cond = CompiledCondition(tree, providers[source])
        except FalcoctlPyError as err:  # an unknown field, a bad value or operator
            raise LocatedError(f"rule {name!r}: {getattr(err, 'bare_message', err)}",
                               path=where[0], line=where[1],
                               hint="plugin fields: " + ", ".join(sorted(extractors[source]))
                               ) from err
        by_source.setdefault(source, []).append(PluginRule(
            name=name, source=source, priority=prio, tags=tags,
            output=str(item.get("output", "")), condition=cond))
    engines = {src: PluginRulesEngine(rules, first=rule_matching == "first", iso=iso)
               for src, rules in by_source.items()}
    return engines, defs.used


class PluginRulesEngine:
    """Evaluates a plugin source's rules on its events (``event.plugin_fields``)."""

    def __init__(self, rules: list[PluginRule], *, first: bool, iso: bool) -> None:
        self.rules = rules
        self.first = first
        self.iso = iso
        self.hostname = hostname()

    def process(self, event: Any) -> list[Any]:
        fields = event.plugin_fields
        out = []
        for rule in self.rules:
            if rule.condition(fields):
                out.append(self._alert(rule, event, fields))
                if self.first:
                    break
        return out

    def _alert(self, rule: PluginRule, event: Any, fields: Any) -> InternalAlert:
        values: dict[str, Any] = {}

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            value = fields.get(key)
            values[key] = value
            return "<NA>" if value is None else str(value)

        message = _TOKEN.sub(sub, rule.output)
        prefix = "evt.time.iso8601" if self.iso else "evt.time"
        values[prefix] = event.ts
        line = f"{text_time(event.ts, iso=self.iso)}: {_PRIORITIES[rule.priority].title()} " \
               f"{message}"
        return InternalAlert(time=event.ts, rule=rule.name,
                             priority=_PRIORITIES[rule.priority].title(), output=line,
                             output_fields=values, source=rule.source, tags=list(rule.tags),
                             hostname=self.hostname)

