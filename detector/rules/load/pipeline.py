"""Falco's compile pipeline for collected definitions (``rule_loader_compiler.cpp``).

1. lists: one level of list-in-list expansion (only lists defined earlier);
2. rule conditions get their exceptions spliced in as text;
3. list names are substituted as text in every condition (``quote_item``, no escaping);
4. conditions are parsed; macro identifiers are replaced by the macros' trees (a macro sees
   only macros defined before it, a rule sees all), undefined ones are errors;
5. outputs are checked, conditions compiled (fields, operators, values) by the compiler,
   event types inferred; warnings as Falco gives them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.rules.errors import ConditionSyntaxError
from detector.rules.eval.codegen import compile_rule_condition
from detector.rules.fields.registry import EVENT, Provider
from detector.rules.lang.ast import (
    BinaryCheck,
    Expr,
    FieldRef,
    Transformer,
    UnaryCheck,
    ValueNode,
    walk,
)
from detector.rules.lang.parser import parse
from detector.rules.load.collector import Collector, RuleDef
from detector.rules.load.macros import EXPANSION_LIMITS, ExpansionLimits, MacroError, MacroResolver
from detector.rules.load.result import LoadFailure, LoadMessage, Location
from detector.rules.load.rewrite import exception_condition, resolve_list
from falcoctl_py.errors import FalcoctlPyError

Ctx = tuple[Location, ...]
_UNKNOWN_FILTER = ("nonexistent field", "invalid formatting token", "unknown event type",
                   "unknown filter:")
DEPRECATED_FIELDS = ("evt.dir", "evt.latency", "evt.wait_latency")


@dataclass(frozen=True, slots=True)
class AppendOutput:
    """falco.yaml ``append_output``: extra text for rules matching source, tags and name."""

    format: str
    source: str = ""
    tags: frozenset[str] = frozenset()
    rule: str = ""

    def applies(self, r: RuleDef) -> bool:
        return ((not self.source or self.source == r.source) and self.tags <= r.tags
                and (not self.rule or self.rule == r.name))


@dataclass(slots=True)
class CompiledRule:
    """A rule ready for the engine."""

    info: RuleDef
    tree: Expr
    condition: str  # the condition text after exceptions and list substitution
    compiled: Any  # the compiler's callable
    evttypes: frozenset[str] | None  # None = every event type
    exception_fields: frozenset[str]
    output: str  # the output format after Falco's adjustments (``%container.info`` dropped)


@dataclass(slots=True)
class CompileOutput:
    rules: list[CompiledRule] = field(default_factory=list)
    macros: dict[str, Expr] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Compiler:
    """Compiles a collector's definitions; errors stop it unless ``collect``."""

    col: Collector
    collect: bool = False
    output_check: Callable[[str, Provider], None] | None = None
    # The fields of each source (the built-in syscall fields for a source not named here).
    providers: Mapping[str, Provider] = field(default_factory=dict)
    append_output: tuple[AppendOutput, ...] = ()
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)
    snippet: Callable[[Ctx], str] = lambda ctx: ""
    limits: ExpansionLimits = EXPANSION_LIMITS

    def warn(self, code: str, message: str, ctx: Ctx) -> None:
        self.warnings.append(LoadMessage(code, message, ctx, self.snippet(ctx)))

    def error(self, exc: LoadFailure) -> None:
        m = exc.msg
        self.errors.append(LoadMessage(m.code, m.message, m.locations, self.snippet(m.locations),
                                       m.hint))
        if not self.collect:
            raise _Stop

    def run(self) -> CompileOutput:
        out = CompileOutput()
        with contextlib.suppress(_Stop):
            self._run(out)
        return out

    def _lists(self) -> dict[str, list[str]]:
        lists = self.col.lists
        expanded: dict[str, list[str]] = {}
        for lst in lists.values():
            items: list[str] = []
            for item in lst.items:
                ref = lists.get(item)
                if ref is not None and ref.index < lst.visibility:
                    ref.used = True
                    items.extend(ref.items)
                else:
                    items.append(item)
            if len(items) > self.limits.max_list_items:
                self.error(LoadFailure(
                    "LOAD_ERR_VALIDATE", f"List '{lst.name}' expands to {len(items)} items, over "
                    f"the limit of {self.limits.max_list_items}", lst.ctx,
                    "a list naming other lists repeats their items: name each list once"))
                items = list(lst.items)
            expanded[lst.name] = items
        return expanded

    def substitute(self, cond: str, lists: dict[str, list[str]], ctx: Ctx) -> str:
        for name, items in lists.items():
            if name in cond:
                cond, used = resolve_list(cond, name, items)
                if used:
                    self.col.lists[name].used = True
                if len(cond) > self.limits.max_condition_chars:
                    limit = self.limits.max_condition_chars
                    raise LoadFailure("LOAD_ERR_VALIDATE", f"The condition is over {limit} "
                                      f"characters once list '{name}' is substituted", ctx,
                                      "use the list fewer times, or shorter lists")
        return cond

    def parse(self, text: str, ctx: Ctx) -> Expr:
        try:
            return parse(text)
        except ConditionSyntaxError as exc:
            raise LoadFailure("LOAD_ERR_COMPILE_CONDITION", exc.bare_message,
                              (*ctx, _cond_loc(ctx, exc))) from None

    def _run(self, out: CompileOutput) -> None:
        for lst in self.col.lists.values():
            lst.used = False
        for m in self.col.macros.values():
            m.used = False
        lists = self._lists()
        out.lists = lists
        trees: dict[str, Expr] = {}
        for m in self.col.macros.values():
            try:
                trees[m.name] = self.parse(self.substitute(m.cond, lists, m.ctx), m.cond_ctx)
            except LoadFailure as exc:
                self.error(exc)
        resolver = MacroResolver(self.col.macros, trees, self.limits)
        for m in self.col.macros.values():
            if m.name not in trees:
                continue
            try:
                out.macros[m.name] = resolver.resolve_checked(m.name, "macro", trees[m.name],
                                                              m.visibility, (m.name,))
            except MacroError as exc:
                self.error(LoadFailure("LOAD_ERR_VALIDATE", str(exc), m.ctx, exc.hint))
        for r in self.col.rules.values():
            if r.unknown_source:
                continue
            try:
                compiled = self.compile_rule(r, lists, resolver)
            except LoadFailure as exc:
                self.error(exc)
                continue
            if compiled is not None:
                out.rules.append(compiled)
        for m in self.col.macros.values():
            if not m.used:
                self.warn("LOAD_UNUSED_MACRO", "Macro not referred to by any other rule/macro",
                          m.ctx)
        for lst in self.col.lists.values():
            if not lst.used:
                self.warn("LOAD_UNUSED_LIST", "List not referred to by any other rule/macro",
                          lst.ctx)

    def compile_rule(self, r: RuleDef, lists: dict[str, list[str]],
                     resolver: MacroResolver) -> CompiledRule | None:
        cond, ex_fields = r.cond, set[str]()
        if r.exceptions:
            cond, ex_fields = exception_condition(r.cond, r.exceptions)
        cond = self.substitute(cond, lists, r.ctx)
        tree = self.parse(cond, r.cond_ctx)
        try:
            tree = resolver.resolve_checked(r.name, "rule", tree, None)
        except MacroError as exc:
            raise LoadFailure("LOAD_ERR_VALIDATE", str(exc), r.ctx, exc.hint) from None
        self.deprecation_warnings(tree, r)
        provider = self.providers.get(r.source or "syscall", EVENT)
        output = r.output
        for extra in self.append_output:
            if extra.applies(r):
                output = f"{output} {extra.format}"
        if "%container.info" in output:
            output = output.replace("%container.info", "").strip()
            self.warn("LOAD_DEPRECATED_ITEM", "%container.info is deprecated and no longer does "
                      "anything; it has been removed from the rule output", r.output_ctx or r.ctx)
        if self.output_check is not None:
            try:
                self.output_check(output, provider)
            except FalcoctlPyError as exc:
                msg = getattr(exc, "bare_message", str(exc))
                if r.skip_if_unknown_filter and any(s in msg for s in _UNKNOWN_FILTER):
                    self.warn("LOAD_UNKNOWN_FILTER", msg, r.output_ctx or r.ctx)
                    return None
                raise LoadFailure("LOAD_ERR_COMPILE_OUTPUT", msg, r.output_ctx or r.ctx) from None
        try:
            compiled, evttypes, warns = compile_rule_condition(tree, provider)
        except FalcoctlPyError as exc:
            msg = getattr(exc, "bare_message", str(exc))
            if r.skip_if_unknown_filter and any(s in msg for s in _UNKNOWN_FILTER):
                self.warn("LOAD_UNKNOWN_FILTER", msg, r.cond_ctx or r.ctx)
                return None
            raise LoadFailure("LOAD_ERR_COMPILE_CONDITION", msg, r.cond_ctx or r.ctx,
                              getattr(exc, "hint", "") or "") from None
        for w in warns:
            self.warn("LOAD_COMPILE_CONDITION", w, r.cond_ctx or r.ctx)
        too_many = evttypes is None or len(evttypes) > 100
        if r.source == "syscall" and too_many and r.warn_evttypes:
            self.warn("LOAD_NO_EVTTYPE", "Rule matches too many evt.type values. This has a "
                                         "significant performance penalty.", r.ctx)
        return CompiledRule(r, tree, cond, compiled, evttypes, frozenset(ex_fields), output)

    def deprecation_warnings(self, tree: Expr, r: RuleDef) -> None:
        for n in walk(tree):
            if isinstance(n, (BinaryCheck, UnaryCheck)):
                f = n.left
                while isinstance(f, Transformer) and f.args:
                    f = f.args[0]  # type: ignore[assignment]
                if not isinstance(f, FieldRef):
                    continue
                if f.name.startswith(DEPRECATED_FIELDS):
                    self.warn("LOAD_DEPRECATED_ITEM", f"usage of deprecated field '{f.name}' has "
                              "been detected in the rule condition", r.cond_ctx or r.ctx)
                if isinstance(n, BinaryCheck) and f.name.startswith(("ka.", "jevt.")) \
                        and n.op in ("=", "==", "!=", "in", "intersects", "pmatch"):
                    right = n.right
                    vals = right.items if hasattr(right, "items") else \
                        (right.value,) if isinstance(right, ValueNode) else ()
                    if "<NA>" in vals:
                        self.warn("LOAD_UNSAFE_NA_CHECK", "The condition compares a field with "
                                  "<NA>, which may not behave as expected", r.cond_ctx or r.ctx)
        for m in re.finditer(r"%(?:[0-9]+)?(evt\.dir|evt\.latency[a-z_.]*|evt\.wait_latency)",
                             r.output):
            self.warn("LOAD_DEPRECATED_ITEM", f"usage of deprecated field '{m.group(1)}' has "
                      "been detected in the rule output", r.output_ctx or r.ctx)


class _Stop(Exception):
    """Internal: stop compiling at the first error (Falco's behaviour)."""


def _cond_loc(ctx: Ctx, exc: ConditionSyntaxError) -> Location:
    base = ctx[-1] if ctx else Location("condition expression")
    return Location("condition expression", "", base.path, base.line, base.column + exc.cond_col,
                    base.offset + exc.idx)
