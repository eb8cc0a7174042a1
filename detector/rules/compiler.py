"""The condition compiler: a condition tree becomes generated Python, compiled once.

Each check becomes an inline expression over the event's locals (see ``fields_event``): fields
are attribute reads, constants are bound as globals of the generated function (numbers, IPs and
networks parsed, lists as frozensets, globs and regexes compiled, pmatch prefix sets built),
operators are chosen at build time, and constant parts fold away. Given an event type, a
condition also specialises: ``evt.type`` checks become constants and ``evt.num = 0`` (never
true on a real event) is false, so a rule's code for ``openat`` keeps only what ``openat`` needs.

``compile_rule_condition(ast)`` is what the loader calls: ``(callable, evttypes, warnings)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from detector.rules.ast import (
    And,
    BinaryCheck,
    Expr,
    FieldRef,
    Identifier,
    ListNode,
    Not,
    Or,
    Transformer,
    UnaryCheck,
    ValueNode,
    walk,
)
from detector.rules.eventtable import EVT_TYPE_NAMES
from detector.rules.fields import (
    ANY,
    ANYIP,
    EVENT,
    LIST,
    SCALAR,
    CompileError,
    FieldError,
    Provider,
    is_field_name,
)
from detector.rules.plan import CheckPlan, Operand, plan_check
from detector.rules.refeval import ReferenceEvaluator, one
from detector.rules.values import TRANSFORMS, PathPrefixes, ascii_lower, glob_regex

__all__ = [
    "CompileError",
    "CompiledCondition",
    "FieldError",
    "compile_condition",
    "compile_rule_condition",
    "condition_warnings",
    "evttypes",
]

UNIVERSE: frozenset[str] = EVT_TYPE_NAMES
_EXPENSIVE = re.compile(r"_h_|join\(|sum\(|len\(")
_TOKEN = re.compile("\x01([^\x01\x02]*)\x02")
_UNSET = object()
_GROUPABLE = {"=": "eq", "in": "eq", "startswith": "startswith", "endswith": "endswith"}
_HELPERS: dict[str, object] = {
    "_h_al": ascii_lower,
    "_U": _UNSET,
    "_h_glob": glob_regex,
    **{f"_h_t_{n}": f for n, f in TRANSFORMS.items()},
}


class _Gen:
    """Generates the Python expression of one condition (optionally for one event type)."""

    def __init__(self, plans: dict[int, CheckPlan], provider: Provider, evttype: str | None,
                 prefix: str) -> None:
        self.plans = plans
        self.provider = provider
        self.evttype = evttype
        self.prefix = prefix
        self.env: dict[str, object] = {}
        self.n = 0

    def name(self, kind: str) -> str:
        self.n += 1
        return f"_{kind}{self.prefix}_{self.n}"

    def const(self, value: object) -> str:
        key = self.name("k")
        self.env[key] = value
        return key

    def expr(self, node: Expr) -> str:
        if isinstance(node, And):
            parts = [self.expr(c) for c in node.children]
            if "False" in parts:
                return "False"
            parts = [p for p in parts if p != "True"]
            return "True" if not parts else parts[0] if len(parts) == 1 else \
                "(" + " and ".join(parts) + ")"
        if isinstance(node, Or):
            parts = self._or_parts(node)
            if "True" in parts:
                return "True"
            parts = [p for p in parts if p != "False"]
            return "False" if not parts else parts[0] if len(parts) == 1 else \
                "(" + " or ".join(parts) + ")"
        if isinstance(node, Not):
            inner = self.expr(node.child)
            return {"True": "False", "False": "True"}.get(inner, f"(not {inner})")
        if isinstance(node, Identifier):
            raise CompileError(f"Undefined macro '{node.name}' used in filter.", pos=node.pos)
        return self.check(self.plans[id(node)])

    # -- or-groups: ``f startswith a or f startswith b`` -> one ``startswith((a, b))`` ---------

    def _groupable(self, node: Expr) -> tuple[str, str] | None:
        if not isinstance(node, BinaryCheck):
            return None
        plan = self.plans[id(node)]
        fam = _GROUPABLE.get(plan.op)
        if fam is None or plan.rhs is not None or plan.modifier or plan.is_net \
                or plan.left.kind != SCALAR or plan.left.transforms \
                or plan.left.text in ("evt.type", "evt.num"):
            return None
        if fam != "eq" and not all(isinstance(c, (str, bytes)) for c in plan.consts):
            return None
        return plan.left.text, fam

    def _or_parts(self, node: Or) -> list[str]:
        groups: dict[tuple[str, str], list[CheckPlan]] = {}
        for child in node.children:
            key = self._groupable(child)
            if key is not None:
                groups.setdefault(key, []).append(self.plans[id(child)])
        parts: list[str] = []
        done: set[tuple[str, str]] = set()
        for child in node.children:
            key = self._groupable(child)
            if key is None or len(groups[key]) < 2:
                parts.append(self.expr(child))
            elif key not in done:
                done.add(key)
                members = groups[key]
                consts = tuple(c for p in members for c in p.consts)
                parts.append(self._merged(members[0].left, key[1], consts))
        return parts

    def _merged(self, left: Operand, fam: str, consts: tuple[Any, ...]) -> str:
        x = self.operand(left)
        if fam == "eq":
            return f"({x} in {self.const(frozenset(consts))})"
        v = self.name("v")
        return f"(({v} := {x}) is not None and {v}.{fam}({self.const(consts)}))"

    # -- checks ---------------------------------------------------------------------------------

    def operand(self, opnd: Operand) -> str:
        x = opnd.field.expr
        if _EXPENSIVE.search(x):
            x = f"\x01{x}\x02"  # a shared-value token, resolved by finalize()
        for name in opnd.transforms:
            w = self.name("w")
            if opnd.field.kind == LIST and name != "len":
                fn = self.const(lambda v, f=TRANSFORMS[name]: _map_or_none(f, v))
            else:
                fn = f"_h_t_{name}"
            x = f"(None if ({w} := {x}) is None else {fn}({w}))"
        return x

    def check(self, plan: CheckPlan) -> str:
        folded = self._fold(plan)
        if folded is not None:
            return folded
        x = self.operand(plan.left)
        if plan.op == "exists":
            return f"({x} is not None)"
        v = self.name("v")
        kind = plan.left.kind
        if plan.rhs is not None:
            r = self.name("r")
            rx = self.operand(plan.rhs)
            if kind == LIST:
                pred = f"set({r}).issuperset({v})" if plan.op == "in" else \
                    f"not set({r}).isdisjoint({v})"
            elif plan.rhs.kind == LIST:
                pred = f"{v} in {r}"
            else:
                pred = self.pred(plan, plan.op, v, r, rhs=True)
            return f"(({v} := {x}) is not None and ({r} := {rx}) is not None and {pred})"
        if kind == LIST:
            kset = self.const(frozenset(plan.consts))
            if plan.op == "in":
                return f"(({v} := {x}) is not None and {kset}.issuperset({v}))"
            return f"(({v} := {x}) is not None and not {kset}.isdisjoint({v}))"
        if kind in (ANY, ANYIP):
            if plan.op in ("in", "intersects", "=") and not plan.is_net and not plan.modifier:
                kset = self.const(frozenset(plan.consts))
                return f"(({v} := {x}) is not None and not {kset}.isdisjoint({v}))"
            if kind == ANYIP and plan.op == "!=":
                inner = self.pred(plan, "=", "_i", None)
                return f"(({v} := {x}) is not None and not any({inner} for _i in {v}))"
            inner = self.pred(plan, plan.op, "_i", None)
            return f"(({v} := {x}) is not None and any({inner} for _i in {v}))"
        if not plan.modifier and not plan.is_net:
            if plan.op == "=":
                return f"({x} == {self.const(plan.consts[0])})"
            if plan.op in ("in", "intersects"):
                if not plan.consts:
                    return "False"
                if len(plan.consts) == 1:
                    return f"({x} == {self.const(plan.consts[0])})"
                return f"({x} in {self.const(frozenset(plan.consts))})"
        return f"(({v} := {x}) is not None and {self.pred(plan, plan.op, v, None)})"

    def pred(self, plan: CheckPlan, op: str, v: str, r: str | None, *, rhs: bool = False) -> str:
        """The operator on the non-None value ``v`` (against constants, or the local ``r``)."""
        if plan.modifier or (not rhs and plan.is_net) or (op == "pmatch" and not rhs):
            if op == "pmatch":
                k = self.const(PathPrefixes(plan.consts))
                return f"{k}({v})"
            consts = list(plan.consts)
            fn = self.const(lambda value, p=plan, o=op, c=consts: one(p, o, value, c))
            return f"{fn}({v})"
        if op in ("in", "intersects") and not rhs:
            return f"({v} in {self.const(frozenset(plan.consts))})"
        c = r if rhs else self.const(plan.consts[0])
        assert c is not None
        simple = {"=": "==", "in": "==", "intersects": "==", "!=": "!=", "<": "<", "<=": "<=",
                  ">": ">", ">=": ">="}
        if op in simple:
            return f"({v} {simple[op]} {c})"
        if op in ("contains", "bcontains"):
            return f"({c} in {v})"
        if op in ("startswith", "bstartswith"):
            return f"{v}.startswith({c})"
        if op == "endswith":
            return f"{v}.endswith({c})"
        if op == "icontains":
            lc = f"_h_al({c})" if rhs else self.const(ascii_lower(plan.consts[0]))
            return f"({lc} in _h_al({v}))"
        if op in ("glob", "iglob"):
            fold = op == "iglob"
            if rhs:
                return f"(_h_glob({c}, casefold={fold}).fullmatch({v}) is not None)"
            k = self.const(glob_regex(plan.consts[0], casefold=fold).fullmatch)
            return f"({k}({v}) is not None)"
        if op == "regex":
            return f"({self.const(plan.consts[0].fullmatch)}({v}) is not None)"
        raise AssertionError(f"unknown operator {op}")

    def _fold(self, plan: CheckPlan) -> str | None:
        left = plan.left
        if left.transforms or plan.rhs is not None or plan.op == "exists":
            return None
        if left.text == "evt.type" and self.evttype is not None and self.provider is EVENT:
            return str(bool(one(plan, plan.op, self.evttype, list(plan.consts))))
        if left.text == "evt.num" and self.provider.evt_num_positive and not plan.modifier:
            c = list(plan.consts)
            never = {"=": c == [0], "in": all(x == 0 for x in c), "<": bool(c) and c[0] <= 1,
                     "<=": bool(c) and c[0] <= 0}
            always = {"!=": c == [0], ">": bool(c) and c[0] <= 0, ">=": bool(c) and c[0] <= 1}
            if never.get(plan.op):
                return "False"
            if always.get(plan.op):
                return "True"
        return None


def _map_or_none(fn: Callable[[Any], Any], values: list[Any]) -> list[Any] | None:
    out = [fn(v) for v in values]
    return None if any(v is None for v in out) else out


class CompiledCondition:
    """A compiled condition: call it with an event; ``fn`` is the bare generated function."""

    __slots__ = ("env", "evttypes", "expr", "fn", "node", "plans", "provider", "source",
                 "warnings")

    def __init__(self, node: Expr, provider: Provider = EVENT) -> None:
        self.node = node
        self.provider = provider
        self.plans: dict[int, CheckPlan] = {}
        _plan_all(node, provider, self.plans)
        self.evttypes = evttypes(node)
        self.warnings = condition_warnings(node)
        self.expr, self.source = "False", ""
        self.env: dict[str, object] = {}
        self.fn: Callable[[Any], bool] = self._build(None)

    def __call__(self, event: Any) -> bool:
        return self.fn(event)

    def generate(self, evttype: str | None = None,
                 prefix: str = "") -> tuple[str, dict[str, object]]:
        """The expression (and its constants) for one event type, or for any event (None)."""
        gen = _Gen(self.plans, self.provider, evttype, prefix)
        return gen.expr(self.node), gen.env

    def prelude(self, expr: str) -> list[str]:
        """The statements binding the locals ``expr`` reads (``t = e.thread`` ...)."""
        return [self.provider.prelude[n] for n in self.provider.locals_used(expr)]

    def _build(self, evttype: str | None) -> Callable[[Any], bool]:
        expr, env = self.generate(evttype)
        shared, (expr,) = finalize([expr])
        lines = ["def _cond(e):", *("    " + s for s in self.prelude(expr)),
                 *("    " + s for s in shared), f"    return {expr}"]
        source = "\n".join(lines)
        self.expr, self.env, self.source = expr, env, source
        ns: dict[str, Any] = {**self.provider.helpers, **_HELPERS, **env}
        try:
            exec(compile(source, "<condition>", "exec"), ns)
        except (SyntaxError, RecursionError, MemoryError):  # absurdly deep trees
            return ReferenceEvaluator(self.node, self.provider)
        fn: Callable[[Any], bool] = ns["_cond"]
        return fn

    def specialize(self, evttype: str) -> Callable[[Any], bool] | None:
        """A function for events of one type, or None when no such event can match."""
        expr, env = self.generate(evttype)
        if expr == "False":
            return None
        shared, (expr,) = finalize([expr])
        lines = ["def _cond(e):", *("    " + s for s in self.prelude(expr)),
                 *("    " + s for s in shared), f"    return {expr}"]
        ns: dict[str, Any] = {**self.provider.helpers, **_HELPERS, **env}
        try:
            exec(compile("\n".join(lines), "<condition>", "exec"), ns)
        except (SyntaxError, RecursionError, MemoryError):
            return self.fn
        fn: Callable[[Any], bool] = ns["_cond"]
        return fn


def finalize(parts: list[str]) -> tuple[list[str], list[str]]:
    """Resolve shared-value tokens: a costly field read twice or more is computed once, lazily.

    Returns the statements to put before the expressions and the expressions themselves.
    """
    counts: dict[str, int] = {}
    for part in parts:
        for m in _TOKEN.finditer(part):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    names = {expr: f"_c{i}" for i, expr in enumerate(e for e, n in counts.items() if n > 1)}

    def repl(m: re.Match[str]) -> str:
        expr = m.group(1)
        name = names.get(expr)
        if name is None:
            return expr
        return f"({name} if {name} is not _U else ({name} := {expr}))"

    return [f"{n} = _U" for n in names.values()], [_TOKEN.sub(repl, p) for p in parts]


def helpers_for(provider: Provider) -> dict[str, object]:
    """The globals generated code needs besides its constants."""
    return {**provider.helpers, **_HELPERS}


def _plan_all(node: Expr, provider: Provider, plans: dict[int, CheckPlan]) -> None:
    stack: list[Expr] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (And, Or)):
            stack.extend(n.children)
        elif isinstance(n, Not):
            stack.append(n.child)
        elif isinstance(n, (BinaryCheck, UnaryCheck)):
            plans[id(n)] = plan_check(n, provider)
        else:
            raise CompileError(f"Undefined macro '{n.name}' used in filter.", pos=n.pos)


def compile_condition(node: Expr, provider: Provider = EVENT) -> CompiledCondition:
    """Compile a (macro-expanded) condition; raise :class:`CompileError` at load time."""
    return CompiledCondition(node, provider)


def compile_rule_condition(
    node: Expr,
) -> tuple[CompiledCondition, frozenset[str] | None, list[str]]:
    """What the loader calls: the callable, its event types (None = all) and its warnings."""
    compiled = CompiledCondition(node, EVENT)
    return compiled, compiled.evttypes, compiled.warnings


# -- evt.type inference (libsinsp filter/ppm_codes.cpp) ------------------------------------------


def evttypes(node: Expr) -> frozenset[str] | None:
    """The event types a condition can match (Falco's inference); None means every type."""
    types = _types(node, False)
    return None if types >= UNIVERSE else types


def _types(node: Expr, neg: bool) -> frozenset[str]:
    if isinstance(node, (And, Or)):
        sets = [_types(c, neg) for c in node.children]
        union = isinstance(node, Or) != neg
        out = sets[0]
        for s in sets[1:]:
            out = out | s if union else out & s
        return out
    if isinstance(node, Not):
        return _types(node.child, not neg)
    if isinstance(node, BinaryCheck) and isinstance(node.left, FieldRef) \
            and node.left.arg is None and not isinstance(node.right, (FieldRef, Transformer)):
        values = node.right.items if isinstance(node.right, ListNode) else \
            (node.right.value,) if isinstance(node.right, ValueNode) else ()
        name, op = node.left.name, node.op
        if name in ("evt.type", "syscall.type") and op in ("=", "==", "in", "!="):
            named = frozenset(values)
            s = UNIVERSE - named if op == "!=" else named & UNIVERSE
            return UNIVERSE - s if neg else s
        if name == "evt.num":
            nums = [int(v) for v in values if re.fullmatch(r"[+-]?[0-9]+", v)]
            if len(nums) != len(values):
                return UNIVERSE
            empty = (op in ("=", "==") and nums == [0]) or (op == "in" and all(
                x == 0 for x in nums)) or (op == "<" and nums[0] <= 1)
            if empty:
                return UNIVERSE if neg else frozenset()
    return UNIVERSE


# -- compile-time warnings (libsinsp filter.cpp) ------------------------------------------------

_TRANSFORMER_TEXT = re.compile(r"(tolower|toupper|b64|basename|len|val|join|concat|getopt)"
                               r"\((.*)\)")
_REGEX_SPECIAL = set("\\^$.|?*+()[]{}")


def condition_warnings(node: Expr) -> list[str]:
    """Falco's compiler warnings: consts that look like fields, regexes that could be simpler."""
    out: list[str] = []
    for n in walk(node):
        if not isinstance(n, BinaryCheck):
            continue
        values = n.right.items if isinstance(n.right, ListNode) else \
            (n.right.value,) if isinstance(n.right, ValueNode) else ()
        for v in values:
            m = _TRANSFORMER_TEXT.fullmatch(v)
            if m and is_field_name(m.group(2).strip()):
                out.append(f"'{v}' may be a valid field transformer misused as a const string "
                           "value")
            elif is_field_name(v):
                out.append(f"'{v}' may be a valid field misused as a const string value")
        if n.op == "regex" and len(values) == 1 and _simple_regex(values[0]):
            out.append(f"regex check with '{values[0]}' may be optimized with simpler "
                       "operators such as '=', 'contains', 'startswith', 'endswith'")
    return out


def _simple_regex(text: str) -> bool:
    for pre in ("^", ".*", ".+", ".?"):
        if text.startswith(pre):
            text = text[len(pre):]
            break
    for post in ("$", ".*", ".+", ".?"):
        if text.endswith(post):
            text = text[: -len(post)]
            break
    return bool(text) and not any(ch in _REGEX_SPECIAL for ch in text)
