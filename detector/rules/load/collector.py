"""Definitions read from rules files, and Falco's define / append / replace bookkeeping.

Every definition gets an increasing index from one counter shared by all kinds; a redefinition
keeps its first index (its position) and moves its visibility forward, as do appends
(``rule_loader_collector.cpp``). Rules are evaluated in the order of their first definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.rules.load.result import LoadFailure, Location

PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational",
              "Debug")
_PRIORITY_NAMES = {p.lower(): i for i, p in enumerate(PRIORITIES)}
_PRIORITY_NAMES["info"] = 6


def parse_priority(text: str) -> int | None:
    """Falco priority name (any case, ``info`` too) -> 0 (Emergency) .. 7 (Debug)."""
    return _PRIORITY_NAMES.get(text.strip().lower())


@dataclass(slots=True)
class Entry:
    """An exception field/comp/value: one string, or a list of entries."""

    item: str = ""
    items: list[Entry] | None = None

    @property
    def is_list(self) -> bool:
        return self.items is not None


@dataclass(slots=True)
class ExceptionDef:
    """One ``exceptions:`` entry of a rule."""

    name: str
    ctx: tuple[Location, ...]
    fields: Entry | None = None
    comps: Entry | None = None
    values: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class ListDef:
    name: str
    items: list[str]
    ctx: tuple[Location, ...]
    index: int = 0
    visibility: int = 0
    used: bool = False


@dataclass(slots=True)
class MacroDef:
    name: str
    cond: str
    ctx: tuple[Location, ...]
    cond_ctx: tuple[Location, ...]
    index: int = 0
    visibility: int = 0
    used: bool = False


@dataclass(slots=True)
class RuleDef:
    name: str
    ctx: tuple[Location, ...]
    cond: str = ""
    cond_ctx: tuple[Location, ...] = ()
    output: str = ""
    output_ctx: tuple[Location, ...] = ()
    desc: str = ""
    priority: int = 7
    source: str = "syscall"
    enabled: bool = True
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionDef] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    index: int = 0
    visibility: int = 0
    unknown_source: bool = False


@dataclass(slots=True)
class RuleUpdate:
    """What an ``append``/``override`` item carries (only the keys it names are set)."""

    name: str
    ctx: tuple[Location, ...]
    source: str = ""
    cond: str | None = None
    cond_ctx: tuple[Location, ...] = ()
    output: str | None = None
    output_ctx: tuple[Location, ...] = ()
    desc: str | None = None
    tags: set[str] | None = None
    exceptions: list[ExceptionDef] | None = None
    priority: int | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None
    capture: bool | None = None
    capture_duration: int | None = None


def _fail(message: str, ctx: tuple[Location, ...], code: str = "LOAD_ERR_VALIDATE") -> LoadFailure:
    return LoadFailure(code, message, ctx)


@dataclass(slots=True)
class Collector:
    """Every list, macro and rule defined so far, across all files loaded into one engine."""

    lists: dict[str, ListDef] = field(default_factory=dict)
    macros: dict[str, MacroDef] = field(default_factory=dict)
    rules: dict[str, RuleDef] = field(default_factory=dict)
    required_engine_version: tuple[int, int, int] = (0, 0, 0)
    # each requirement: alternatives as (name, version) pairs, with where it was declared
    plugin_requirements: list[tuple[list[tuple[str, str]], tuple[Location, ...]]] = field(
        default_factory=list)
    counter: int = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    # -- lists and macros --------------------------------------------------------------------
    def define_list(self, info: ListDef) -> None:
        idx = self._next()
        prev = self.lists.get(info.name)
        info.index = prev.index if prev else idx
        info.visibility = idx
        self.lists[info.name] = info

    def append_list(self, name: str, items: list[str], ctx: tuple[Location, ...]) -> None:
        prev = self.lists.get(name)
        if prev is None:
            raise _fail("List uses 'append' or 'override.items: append' but no list by that name "
                        "already exists", ctx)
        prev.items = prev.items + items
        prev.visibility = self._next()

    def define_macro(self, info: MacroDef) -> None:
        idx = self._next()
        prev = self.macros.get(info.name)
        info.index = prev.index if prev else idx
        info.visibility = idx
        self.macros[info.name] = info

    def append_macro(self, name: str, cond: str, ctx: tuple[Location, ...]) -> None:
        prev = self.macros.get(name)
        if prev is None:
            raise _fail("Macro uses 'append' or 'override.condition: append' but no macro by that "
                        "name already exists", ctx)
        prev.cond = prev.cond + " " + cond
        prev.visibility = self._next()

    # -- rules -------------------------------------------------------------------------------
    def define_rule(self, info: RuleDef, explicit_source: bool) -> None:
        idx = self._next()
        prev = self.rules.get(info.name)
        if prev is not None:
            if explicit_source and info.source and info.source != prev.source:
                raise _fail("Rule has been re-defined with a different source", info.ctx)
            if not explicit_source:
                info.source = prev.source
                info.unknown_source = prev.unknown_source
        info.index = prev.index if prev else idx
        info.visibility = idx
        self.rules[info.name] = info

    def _prev_rule(self, upd: RuleUpdate, message: str) -> RuleDef:
        prev = self.rules.get(upd.name)
        if prev is None:
            raise _fail(message, upd.ctx)
        if upd.source and upd.source != prev.source:
            raise _fail("Rule has been re-defined with a different source", upd.ctx)
        return prev

    def append_rule(self, upd: RuleUpdate, check_exception: object) -> None:
        prev = self._prev_rule(upd, "Rule uses 'append' or 'override.<key>: append' but no rule "
                                    "by that name already exists")
        if upd.cond is not None:
            prev.cond = prev.cond + " " + upd.cond
        if upd.output is not None:
            prev.output = prev.output + " " + upd.output
        if upd.desc is not None:
            prev.desc = prev.desc + " " + upd.desc
        if upd.tags is not None:
            prev.tags |= upd.tags
        for ex in upd.exceptions or []:
            old = next((e for e in prev.exceptions if e.name == ex.name), None)
            if old is None:
                if ex.fields is None:
                    raise _fail("Rule exception must have fields property with a list of fields",
                                ex.ctx)
                if not ex.values:
                    raise _fail("Rule exception must have values property with a list of values",
                                ex.ctx)
                if callable(check_exception) and not prev.unknown_source:
                    check_exception(ex, prev.source)
                prev.exceptions.append(ex)
            else:
                if ex.fields is not None:
                    raise _fail("Can not append exception fields to existing exception, only "
                                "values", ex.ctx)
                if ex.comps is not None:
                    raise _fail("Can not append exception comps to existing exception, only "
                                "values", ex.ctx)
                old.values.extend(ex.values)
        prev.visibility = self._next()

    def replace_rule(self, upd: RuleUpdate, check_exception: object) -> None:
        prev = self.rules.get(upd.name)
        if prev is None:
            keys = [k for k in ("condition", "output", "desc", "tags", "exceptions", "priority",
                                "enabled", "warn_evttypes", "skip-if-unknown-filter", "capture",
                                "capture_duration") if _upd_has(upd, k)]
            key = keys[0] if keys else "condition"
            raise _fail(f"An 'override.{key}: replace' to a rule was requested but no rule by "
                        "that name already exists", upd.ctx)
        if upd.source and upd.source != prev.source:
            raise _fail("Rule has been re-defined with a different source", upd.ctx)
        if upd.cond is not None:
            prev.cond, prev.cond_ctx = upd.cond, upd.cond_ctx
        if upd.output is not None:
            prev.output, prev.output_ctx = upd.output, upd.output_ctx
        if upd.desc is not None:
            prev.desc = upd.desc
        if upd.tags is not None:
            prev.tags = set(upd.tags)
        if upd.exceptions is not None:
            for ex in upd.exceptions:
                if callable(check_exception) and not prev.unknown_source:
                    check_exception(ex, prev.source)
            prev.exceptions = list(upd.exceptions)
        for attr in ("priority", "enabled", "warn_evttypes", "skip_if_unknown_filter", "capture",
                     "capture_duration"):
            value = getattr(upd, attr)
            if value is not None:
                setattr(prev, attr, value)
        prev.visibility = self._next()

    def enable_rule(self, name: str, enabled: bool, ctx: tuple[Location, ...]) -> None:
        prev = self.rules.get(name)
        if prev is None:
            raise _fail("Rule has 'enabled' key but no rule by that name already exists", ctx)
        prev.enabled = enabled


def _upd_has(upd: RuleUpdate, key: str) -> bool:
    attr = {"condition": "cond", "skip-if-unknown-filter": "skip_if_unknown_filter"}.get(key, key)
    return getattr(upd, attr) is not None
