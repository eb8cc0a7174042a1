"""The reference evaluator: a plain walk over the condition tree, one check at a time.

It is slow on purpose and written to be obviously right; the compiled evaluator
(:mod:`detector.rules.eval.codegen`) must agree with it on every condition and event. Both take
their load-time checks from :func:`detector.rules.eval.plan.plan_check`.
"""

from __future__ import annotations

from typing import Any

from detector.rules.eval.plan import CheckPlan, Operand, plan_check
from detector.rules.eval.values import TRANSFORMS, PathPrefixes, ascii_lower, glob_regex
from detector.rules.fields.registry import ANY, ANYIP, EVENT, LIST, CompileError, Provider
from detector.rules.lang.ast import And, BinaryCheck, Expr, Identifier, Not, Or, UnaryCheck


class ReferenceEvaluator:
    """Evaluate one condition tree against events by walking it."""

    def __init__(self, node: Expr, provider: Provider = EVENT) -> None:
        self.node = node
        self.provider = provider
        self.plans: dict[int, CheckPlan] = {}
        self._prepare(node)

    def _prepare(self, node: Expr) -> None:
        if isinstance(node, (And, Or)):
            for child in node.children:
                self._prepare(child)
        elif isinstance(node, Not):
            self._prepare(node.child)
        elif isinstance(node, (BinaryCheck, UnaryCheck)):
            self.plans[id(node)] = plan_check(node, self.provider)
        else:
            raise CompileError(f"Undefined macro '{node.name}' used in filter.", pos=node.pos)

    def __call__(self, event: Any) -> bool:
        return self.eval(self.node, event)

    def eval(self, node: Expr, event: Any) -> bool:
        """The value of ``node`` for ``event``."""
        if isinstance(node, And):
            return all(self.eval(c, event) for c in node.children)
        if isinstance(node, Or):
            return any(self.eval(c, event) for c in node.children)
        if isinstance(node, Not):
            return not self.eval(node.child, event)
        if isinstance(node, Identifier):
            raise CompileError(f"Undefined macro '{node.name}' used in filter.", pos=node.pos)
        return check(self.plans[id(node)], event)


def value_of(opnd: Operand, event: Any) -> Any:
    """An operand's value: the field's value, then each transformer (None stays None)."""
    value = opnd.field.extract(event)
    for name in opnd.transforms:
        if value is None:
            return None
        if isinstance(value, list) and name != "len":
            value = [TRANSFORMS[name](v) for v in value]
            if any(v is None for v in value):
                return None
        else:
            value = TRANSFORMS[name](value)
    return value


def check(plan: CheckPlan, event: Any) -> bool:
    """One comparison, with Falco's semantics for missing values and multi-valued fields."""
    left = value_of(plan.left, event)
    if plan.op == "exists":
        return left is not None and left != []
    if left is None or left == []:
        return False
    if plan.rhs is not None:
        right = value_of(plan.rhs, event)
        if right is None or right == []:
            return False
        if plan.rhs.kind == LIST:
            consts = list(right)
            op = plan.op
        else:
            consts = [right]
            op = plan.op
    else:
        consts = list(plan.consts)
        op = plan.op
    kind = plan.left.kind
    if kind == LIST:
        if op == "in":
            return all(any(compare("=", v, c, plan) for c in consts) for v in left)
        return any(any(compare("=", v, c, plan) for c in consts) for v in left)
    if kind == ANYIP and op == "!=":
        return not any(one(plan, "=", v, consts) for v in left)
    if kind in (ANY, ANYIP):
        return any(one(plan, op, v, consts) for v in left)
    return one(plan, op, left, consts)


def one(plan: CheckPlan, op: str, value: Any, consts: list[Any]) -> bool:
    """``value op consts`` for one extracted value."""
    if op in ("in", "intersects"):
        return any(compare("=", value, c, plan) for c in consts)
    if op == "pmatch":
        return PathPrefixes(consts)(value)
    if plan.modifier is not None:
        hits = sum(1 for c in consts if compare(op, value, c, plan))
        if plan.modifier == "oneof":
            return hits == 1
        if plan.modifier == "anyof":
            return hits >= 1
        return bool(consts) and hits == len(consts)
    return compare(op, value, consts[0], plan)


def compare(op: str, v: Any, c: Any, plan: CheckPlan) -> bool:
    """The operator on two single values."""
    if op == "=":
        return v in c if plan.is_net else v == c
    if op == "!=":
        return v not in c if plan.is_net else v != c
    if op == "<":
        return bool(v < c)
    if op == "<=":
        return bool(v <= c)
    if op == ">":
        return bool(v > c)
    if op == ">=":
        return bool(v >= c)
    if op in ("contains", "bcontains"):
        return c in v
    if op == "icontains":
        return ascii_lower(c) in ascii_lower(v)
    if op in ("startswith", "bstartswith"):
        return bool(v.startswith(c))
    if op == "endswith":
        return bool(v.endswith(c))
    if op == "glob":
        return glob_regex(c).fullmatch(v) is not None
    if op == "iglob":
        return glob_regex(c, casefold=True).fullmatch(v) is not None
    if op == "regex":
        return bool(c.fullmatch(v))
    raise AssertionError(f"unknown operator {op}")


class StackEvaluator:
    """Evaluates a tree of any depth with an explicit stack (no recursion), short-circuiting."""

    __slots__ = ("node", "plans")

    def __init__(self, node: Expr, plans: dict[int, CheckPlan]) -> None:
        self.node = node
        self.plans = plans

    def __call__(self, event: Any) -> bool:
        result = False
        stack: list[list[Any]] = [[self.node, 0]]
        while stack:
            frame = stack[-1]
            n, i = frame
            if isinstance(n, (BinaryCheck, UnaryCheck)):
                result = check(self.plans[id(n)], event)
                stack.pop()
            elif isinstance(n, Not):
                if i == 0:
                    frame[1] = 1
                    stack.append([n.child, 0])
                else:
                    result = not result
                    stack.pop()
            elif isinstance(n, (And, Or)):
                done = i > 0 and (result if isinstance(n, Or) else not result)
                if done or i == len(n.children):
                    stack.pop()
                else:
                    frame[1] = i + 1
                    stack.append([n.children[i], 0])
            else:
                raise CompileError(f"Undefined macro '{n.name}' used in filter.", pos=n.pos)
        return result
