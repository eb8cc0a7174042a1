"""Load-time checking of one comparison: fields bound, transformers typed, constants parsed.

Both evaluators start from a :class:`CheckPlan`, so every load-time error (unknown field,
operator not allowed for the type, bad constant, transformer on the wrong type, right-hand field
rules) is raised here, once, whichever evaluator runs the condition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from detector.rules.ast import BinaryCheck, FieldRef, ListNode, Transformer, UnaryCheck, ValueNode
from detector.rules.fields import (
    ANY,
    ANYIP,
    LIST,
    NET_TYPES,
    SCALAR,
    BoundField,
    CompileError,
    Provider,
)
from detector.rules.values import (
    LIST_OPS,
    TRANSFORMS,
    check_operator,
    family,
    parse_const,
    transformed_type,
)

SUPPORTED_TRANSFORMERS = frozenset(TRANSFORMS)


@dataclass(frozen=True, slots=True)
class Operand:
    """A value taken from the event: a field, then transformers applied innermost first."""

    field: BoundField
    transforms: tuple[str, ...]
    type: str
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """One comparison ready to evaluate: ``left op consts`` or ``left op rhs``."""

    left: Operand
    op: str  # the base operator (``=`` for ``==``), ``exists`` for unary checks
    modifier: str | None  # oneof / anyof / allof (libs 0.25+)
    consts: tuple[Any, ...]  # parsed right-hand constants (empty for rhs fields / exists)
    rhs: Operand | None
    is_net: bool  # left field is an IP network field: ``=`` means "address in network"


def operand(node: FieldRef | Transformer, provider: Provider, *, side: str) -> Operand:
    """Bind a field or transformer expression (``tolower(proc.name)``)."""
    if isinstance(node, FieldRef):
        bound = provider.bind(node.name, node.arg, pos=node.pos)
        return Operand(bound, (), bound.type, bound.kind, bound.text)
    if node.name == "val":
        if side == "left":
            raise CompileError("filter error: 'val' can only be used on the right-hand side",
                               pos=node.pos)
        if len(node.args) != 1 or not isinstance(node.args[0], FieldRef):
            raise CompileError("filter error: 'val' takes exactly one plain field",
                               pos=node.pos, hint="write val(proc.pname)")
        if node.arg is not None:
            raise CompileError("filter error: transformer 'val' does not support field "
                               "arguments", pos=node.pos)
        return operand(node.args[0], provider, side=side)
    if node.name not in SUPPORTED_TRANSFORMERS:
        raise CompileError(f"filter error: transformer '{node.name}' is not supported by "
                           "this engine (Falco 0.42 rules language)", pos=node.pos,
                           hint="use tolower, toupper, b64, basename or len")
    if node.arg is not None:
        raise CompileError(f"filter error: transformer '{node.name}' does not support field "
                           "arguments", pos=node.pos)
    if len(node.args) != 1 or not isinstance(node.args[0], (FieldRef, Transformer)):
        raise CompileError(f"filter error: transformer '{node.name}' takes exactly one field",
                           pos=node.pos)
    inner = operand(node.args[0], provider, side=side if node.name != "val" else "right")
    if inner.field.no_transformer:
        raise CompileError(f"field '{inner.field.text}' does not support transformers",
                           pos=node.pos)
    ttype = transformed_type(node.name, inner.type, is_list=inner.kind == LIST,
                             field=inner.text, pos=node.pos)
    kind = SCALAR if node.name == "len" else inner.kind
    return Operand(inner.field, (*inner.transforms, node.name), ttype, kind,
                   f"{node.name}({inner.text})")


def plan_check(node: BinaryCheck | UnaryCheck, provider: Provider) -> CheckPlan:
    """Bind and type-check one comparison; raise :class:`CompileError` on any problem."""
    left = operand(node.left, provider, side="left")
    if isinstance(node, UnaryCheck):
        return CheckPlan(left, "exists", None, (), None, False)
    base, _, modifier = node.op.partition(" ")
    if base == "==":
        base = "="
    check_operator(node.op, left.type, is_list=left.kind == LIST, pos=node.pos)
    is_net = left.type in NET_TYPES and not left.transforms
    right = node.right
    if isinstance(right, (FieldRef, Transformer)):
        return _rhs_plan(node, left, base, modifier or None, provider, is_net)
    items: tuple[str, ...]
    if isinstance(right, ListNode):
        items = right.items
    elif isinstance(right, ValueNode):
        items = (right.value,)
    else:
        raise CompileError(f"filter error: unexpected right-hand side for '{node.op}'",
                           pos=node.pos)
    if modifier and not isinstance(right, ListNode):
        raise CompileError(f"filter error: '{node.op}' needs a list of values", pos=node.pos)
    ctype = left.type
    consts = tuple(parse_const(v, ctype, base, field=left.text if not left.transforms else "",
                               pos=node.pos) for v in items)
    if base == "regex":
        consts = tuple(_regex(v, node.pos) for v in items)
    return CheckPlan(left, base, modifier or None, consts, None, is_net)


def _regex(text: str, pos: object) -> re.Pattern[str]:
    try:
        return re.compile(text, re.DOTALL)
    except re.error as exc:
        raise CompileError(f"filter error: invalid regular expression '{text}': {exc}",
                           pos=pos) from None


def _rhs_plan(node: BinaryCheck, left: Operand, base: str, modifier: str | None,
              provider: Provider, is_net: bool) -> CheckPlan:
    if base in ("pmatch", "regex") or modifier:
        raise CompileError(f"operator '{base.upper()}' doesn't support right-hand side fields",
                           pos=node.pos)
    if left.field.no_rhs and not left.transforms:
        raise CompileError(f"field '{left.text}' doesn't support right-hand side fields "
                           "(EPF_NO_RHS)", pos=node.pos)
    assert isinstance(node.right, (FieldRef, Transformer))
    rhs = operand(node.right, provider, side="right")
    if rhs.field.no_rhs and not rhs.transforms:
        raise CompileError(f"field '{rhs.text}' can't be used as a right-hand side field",
                           pos=node.pos)
    if left.kind == LIST and base not in LIST_OPS:
        raise CompileError("list field with = not allowed", pos=node.pos)
    if (left.kind == LIST) != (rhs.kind == LIST) and not (base in LIST_OPS and rhs.kind == LIST):
        raise CompileError("rhs field type mismatch (list vs non-list)", pos=node.pos)
    if left.kind != LIST and rhs.kind == LIST and base not in LIST_OPS:
        raise CompileError("rhs field type mismatch (list vs non-list)", pos=node.pos)
    if family(left.type) != family(rhs.type) or (left.kind in (ANY, ANYIP)):
        raise CompileError(f"rhs field type mismatch: '{left.text}' is {left.type.lower()}, "
                           f"'{rhs.text}' is {rhs.type.lower()}", pos=node.pos)
    return CheckPlan(left, base, None, (), rhs, is_net)
