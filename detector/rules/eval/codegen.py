"""The condition compiler: a condition tree becomes generated Python, compiled once.

Each check becomes an inline expression over the event's locals (see
:mod:`~detector.rules.fields.extract`): fields are attribute reads, constants are bound as
globals of the generated function (numbers, IPs and networks parsed, lists as frozensets, globs
and regexes compiled, pmatch prefix sets built), operators are chosen at build time, and
constant parts fold away. Given an event type, a condition also specialises: ``evt.type``
checks become constants and ``evt.num = 0`` (never true on a real event) is false, so a rule's
code for ``openat`` keeps only what ``openat`` needs.

``compile_rule_condition(ast)`` is what the loader calls: ``(callable, evttypes, warnings)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from detector.rules.eval.chains import cost, fold
from detector.rules.eval.inference import condition_warnings, evttypes
from detector.rules.eval.plan import CheckPlan, Operand, plan_check
from detector.rules.eval.reference import StackEvaluator, one
from detector.rules.eval.sharing import ConstPool, check_token, field_token, finalize
from detector.rules.eval.values import TRANSFORMS, PathPrefixes, ascii_lower, glob_regex
from detector.rules.fields.extract import typed_expr
from detector.rules.fields.registry import (
    ANY,
    ANYIP,
    EVENT,
    LIST,
    SCALAR,
    CompileError,
    FieldError,
    Provider,
)
from detector.rules.lang.ast import (
    And,
    BinaryCheck,
    Expr,
    Identifier,
    Not,
    Or,
    UnaryCheck,
)

__all__ = [
    "CompileError",
    "CompiledCondition",
    "FieldError",
    "compile_condition",
    "compile_rule_condition",
    "condition_warnings",
    "evttypes",
]

MAX_CODEGEN_DEPTH = 60
MAX_CODEGEN_CHECKS = 20000
_EXPENSIVE = re.compile(r"_h_|join\(|sum\(|len\(|rfind\(")
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
                 pool: ConstPool) -> None:
        self.plans = plans
        self.provider = provider
        self.evttype = evttype
        self.pool = pool
        self.env = pool.env

    @staticmethod
    def name(kind: str) -> str:
        # Scratch locals are bound and used within one check, so one name per kind is enough,
        # and equal checks stay equal text.
        return f"_{kind}"

    def const(self, value: object) -> str:
        return self.pool.add(value)

    def expr(self, node: Expr) -> str:
        if isinstance(node, And):
            return fold([self.expr(c) for c in node.children], "and", "False", "True")
        if isinstance(node, Or):
            return fold(self._or_parts(node), "or", "True", "False")
        if isinstance(node, Not):
            inner = self.expr(node.child)
            return {"True": "False", "False": "True"}.get(inner, f"(not {inner})")
        if isinstance(node, Identifier):
            raise CompileError(f"Undefined macro '{node.name}' used in filter.", pos=node.pos)
        return self.check(self.plans[id(node)])

    def top(self, node: Expr) -> str:
        """The condition, its top-level ``and`` chain ordered cheapest check first.

        Only there: a check there that raises makes the rule not match whatever the order
        (every check must hold), where under ``not`` or ``or`` the order would change that.
        """
        if not isinstance(node, And):
            return self.expr(node)
        parts = [self.top(c) if isinstance(c, And) else self.expr(c) for c in node.children]
        return fold(sorted(parts, key=cost), "and", "False", "True")

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
        if self.evttype is not None and self.provider is EVENT:
            x = typed_expr(opnd.field.fdef.name, self.evttype, x)
        if opnd.field.func is not None:
            x = f"{self.const(opnd.field.func)}(e)"
        elif _EXPENSIVE.search(x):
            x = field_token(x)
        for name in opnd.transforms:
            w = self.name("w")
            if opnd.field.kind == LIST and name != "len":
                fn = self.const(lambda v, f=TRANSFORMS[name]: _map_or_none(f, v))
            else:
                fn = f"_h_t_{name}"
            x = f"(None if ({w} := {x}) is None else {fn}({w}))"
        return x

    def check(self, plan: CheckPlan) -> str:
        text = self._check(plan)
        return text if text in ("True", "False") else check_token(text)

    def _check(self, plan: CheckPlan) -> str:
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
        if plan.is_net and not rhs and not plan.modifier:
            nets = plan.consts
            if op in ("=", "!=") or len(nets) == 1:
                test = f"({v} in {self.const(nets[0])})" if nets else "False"
                return f"(not {test})" if op == "!=" else test
            k = self.const(lambda ip, ns=tuple(nets): any(ip in n for n in ns))
            return f"{k}({v})"
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
            return f"{self.const(plan.consts[0].fullmatch)}({v})"
        raise AssertionError(f"unknown operator {op}")

    def _fold(self, plan: CheckPlan) -> str | None:
        left = plan.left
        if left.transforms or plan.rhs is not None or plan.op == "exists":
            return None
        if left.text == "evt.type" and self.evttype is not None \
                and self.provider.fold_evttype:
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

    __slots__ = ("deep", "env", "evttypes", "expr", "fn", "node", "plans", "provider",
                 "source", "warnings")

    def __init__(self, node: Expr, provider: Provider = EVENT) -> None:
        self.node = node
        self.provider = provider
        self.plans: dict[int, CheckPlan] = {}
        depth = _plan_all(node, provider, self.plans)
        # Absurdly deep or huge trees are not turned into Python source (its parser has limits,
        # and a 10 MB condition must not take minutes to compile): they run on an evaluator
        # that walks the tree with an explicit stack.
        self.deep = depth > MAX_CODEGEN_DEPTH or len(self.plans) > MAX_CODEGEN_CHECKS
        try:
            self.evttypes = evttypes(node)
        except RecursionError:
            self.evttypes = None  # every type: the condition still checks evt.type itself
        self.warnings = condition_warnings(node)
        self.expr, self.source = "False", ""
        self.env: dict[str, object] = {}
        if self.deep:
            self.fn: Callable[[Any], bool] = StackEvaluator(node, self.plans)
        else:
            self.fn = self._build(None)

    def __call__(self, event: Any) -> bool:
        return self.fn(event)

    def generate(self, evttype: str | None = None, prefix: str = "",
                 pool: ConstPool | None = None) -> tuple[str, dict[str, object]]:
        """The expression (and its constants) for one event type, or for any event (None).

        The expression still holds shared-value tokens: pass it through :func:`finalize`.
        """
        pool = pool or ConstPool(prefix)
        if self.deep:
            return f"{pool.add(self.fn)}(e)", pool.env
        gen = _Gen(self.plans, self.provider, evttype, pool)
        return gen.top(self.node), gen.env

    def prelude(self, expr: str) -> list[str]:
        """The statements binding the locals ``expr`` reads (``t = e.thread`` ...)."""
        return [self.provider.prelude[n] for n in self.provider.locals_used(expr)]

    def _function(self, expr: str, env: dict[str, object]
                  ) -> tuple[str, str, Callable[[Any], bool] | None]:
        """Finalize ``expr`` into a function's source and compile it (None: too deep to)."""
        shared, (expr,) = finalize([expr])
        lines = ["def _cond(e):", *("    " + s for s in self.prelude(expr)),
                 *("    " + s for s in shared), f"    return {expr}"]
        source = "\n".join(lines)
        ns: dict[str, Any] = {**self.provider.helpers, **_HELPERS, **env}
        try:
            exec(compile(source, "<condition>", "exec"), ns)
        except (SyntaxError, RecursionError, MemoryError):  # absurdly deep trees
            return expr, source, None
        fn: Callable[[Any], bool] = ns["_cond"]
        return expr, source, fn

    def _build(self, evttype: str | None) -> Callable[[Any], bool]:
        expr, env = self.generate(evttype)
        self.expr, self.source, fn = self._function(expr, env)
        self.env = env
        return fn if fn is not None else StackEvaluator(self.node, self.plans)

    def specialize(self, evttype: str) -> Callable[[Any], bool] | None:
        """A function for events of one type, or None when no such event can match."""
        if self.deep:
            return self.fn
        expr, env = self.generate(evttype)
        if expr == "False":
            return None
        fn = self._function(expr, env)[2]
        return fn if fn is not None else self.fn


def helpers_for(provider: Provider) -> dict[str, object]:
    """The globals generated code needs besides its constants."""
    return {**provider.helpers, **_HELPERS}


def _plan_all(node: Expr, provider: Provider, plans: dict[int, CheckPlan]) -> int:
    """Plan every check of the tree; return the tree's depth."""
    stack: list[tuple[Expr, int]] = [(node, 1)]
    depth = 0
    while stack:
        n, d = stack.pop()
        depth = max(depth, d)
        if isinstance(n, (And, Or)):
            stack.extend((c, d + 1) for c in n.children)
        elif isinstance(n, Not):
            stack.append((n.child, d + 1))
        elif isinstance(n, (BinaryCheck, UnaryCheck)):
            plans[id(n)] = plan_check(n, provider)
        else:
            raise CompileError(f"Undefined macro '{n.name}' used in filter.", pos=n.pos)
    return depth


def compile_condition(node: Expr, provider: Provider = EVENT) -> CompiledCondition:
    """Compile a (macro-expanded) condition; raise :class:`CompileError` at load time."""
    return CompiledCondition(node, provider)


def compile_rule_condition(
    node: Expr, provider: Provider = EVENT,
) -> tuple[CompiledCondition, frozenset[str] | None, list[str]]:
    """What the loader calls: the callable, its event types (None = all) and its warnings."""
    compiled = CompiledCondition(node, provider)
    return compiled, compiled.evttypes, compiled.warnings
