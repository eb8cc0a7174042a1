"""Falco's evt.type inference and the filter compiler's warnings, on condition trees.

``evttypes`` is libsinsp's ``filter/ppm_codes.cpp``: negation pushed to the leaves, ``and`` is
intersection and ``or`` union, ``evt.type``/``syscall.type`` ``=``/``in``/``!=`` name sets,
``evt.num = 0`` (never true) is empty, anything else is every type. The warnings are
``filter.cpp``'s: constants that look like fields or transformers, regexes that could be simpler.
"""

from __future__ import annotations

import re

from detector.rules.fields.eventtable import EVT_TYPE_NAMES
from detector.rules.fields.registry import is_field_name
from detector.rules.lang.ast import (
    And,
    BinaryCheck,
    Expr,
    FieldRef,
    ListNode,
    Not,
    Or,
    Transformer,
    ValueNode,
    walk,
)

UNIVERSE: frozenset[str] = EVT_TYPE_NAMES


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
            elif is_field_name(v.rstrip()):  # libsinsp matches the field name as a prefix
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
