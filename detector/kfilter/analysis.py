"""Kernel filters derived from the rules: per event type, a sound over-approximation of every
enabled rule's condition, on what a BPF program has in hand at a syscall's exit.

The abstract value (:class:`Keep`) is a conjunction of what an event must have to be kept:
``proc.name`` (the task's comm) in a set or outside a set, and a successful result
(``evt.rawres >= 0``). :func:`over` maps a condition tree (macros and lists expanded, as the
loader gives it) to a ``Keep`` that every event matching the condition satisfies: ``and``
meets, ``or`` joins, ``not`` is pushed inwards and is exact only on the atoms above; anything
else is ``TOP`` (keep everything). Per event type the rules' values are joined; a rule whose
condition gives ``TOP`` leaves its types unfiltered.

Field facts this relies on (checked by the tests against the rules evaluator): ``proc.name``
equals the comm the kernel reports for the event's thread, ``evt.rawres`` is the syscall's
return value, ``evt.failed`` is ``evt.rawres < 0``, ``evt.res`` is ``SUCCESS`` exactly when
``evt.rawres >= 0``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from detector.rules.lang.ast import And, BinaryCheck, Expr, FieldRef, ListNode, Not, Or, ValueNode

COMM_FIELDS = frozenset({"proc.name"})


@dataclass(frozen=True, slots=True)
class Keep:
    """What an event must have to be kept: all of it (a conjunction)."""

    comms: frozenset[str] | None = None  # comm in this set (None: any comm)
    not_comms: frozenset[str] = frozenset()  # comm outside this set (only when comms is None)
    success: bool = False  # evt.rawres >= 0

    @property
    def top(self) -> bool:
        """Keeps every event."""
        return self.comms is None and not self.not_comms and not self.success

    @property
    def bottom(self) -> bool:
        """Keeps no event."""
        return self.comms is not None and not self.comms

    def keeps(self, comm: str, rawres: int | None) -> bool:
        """The kernel's decision for an event with this comm and result."""
        if self.comms is not None and comm not in self.comms:
            return False
        if comm in self.not_comms:
            return False
        return not (self.success and (rawres is None or rawres < 0))

    def meet(self, other: Keep) -> Keep:
        """Both hold."""
        comms = (
            self.comms
            if other.comms is None
            else (other.comms if self.comms is None else self.comms & other.comms)
        )
        nots = self.not_comms | other.not_comms
        if comms is not None:
            comms, nots = comms - nots, frozenset()
        return Keep(comms, nots, self.success or other.success)

    def join(self, other: Keep) -> Keep:
        """Either holds (the least conjunction above both)."""
        if self.bottom:
            return other
        if other.bottom:
            return self
        success = self.success and other.success
        if self.comms is not None and other.comms is not None:
            return Keep(self.comms | other.comms, frozenset(), success)
        if self.comms is None and other.comms is None:
            return Keep(None, self.not_comms & other.not_comms, success)
        allowed = self.comms if self.comms is not None else other.comms
        excluded = self.not_comms if self.comms is None else other.not_comms
        assert allowed is not None
        return Keep(None, excluded - allowed, success)


TOP = Keep()
BOTTOM = Keep(comms=frozenset())
SUCCESS = Keep(success=True)


def _values(right: object) -> frozenset[str] | None:
    if isinstance(right, ValueNode):
        return frozenset({right.value})
    if isinstance(right, ListNode):
        return frozenset(right.items)
    return None


def _atom(node: BinaryCheck, neg: bool) -> Keep:
    """An atom (negated when ``neg``) as a Keep; TOP when it says nothing the kernel sees."""
    left, op = node.left, node.op
    if not isinstance(left, FieldRef) or left.arg is not None:
        return TOP
    if left.name in COMM_FIELDS:
        values = _values(node.right)
        if values is None or op not in ("=", "==", "in", "!="):
            return TOP
        positive = (op != "!=") != neg
        if op == "in" and not isinstance(node.right, ListNode):
            return TOP
        return Keep(comms=values) if positive else Keep(not_comms=values)
    if left.name == "evt.rawres" and isinstance(node.right, ValueNode):
        return _rawres(op, node.right.value, neg)
    if left.name == "evt.res" and isinstance(node.right, ValueNode) and op in ("=", "==", "!="):
        # evt.res is SUCCESS iff rawres >= 0; an equality with SUCCESS (not negated) says so
        is_success = node.right.value == "SUCCESS"
        return SUCCESS if is_success and (op != "!=") != neg else TOP
    if left.name == "evt.failed" and op in ("=", "==") and isinstance(node.right, ValueNode):
        failed = node.right.value.lower() in ("true", "1")
        return SUCCESS if failed == neg else TOP
    return TOP


def _rawres(op: str, text: str, neg: bool) -> Keep:
    """``evt.rawres op N``: success-only when it implies a result >= 0."""
    try:
        n = int(text, 0)
    except ValueError:
        return TOP
    if neg:  # not (x op n) as (x op' n)
        flipped = {">=": "<", ">": "<=", "<": ">=", "<=": ">", "=": "!=", "==": "!=",
                   "!=": "="}  # fmt: skip
        if op not in flipped:
            return TOP
        op = flipped[op]
    implies_success = (
        (op == ">=" and n >= 0) or (op == ">" and n >= -1) or (op in ("=", "==") and n >= 0)
    )
    return SUCCESS if implies_success else TOP


def over(node: Expr, neg: bool = False) -> Keep:
    """A Keep that every event satisfying ``node`` (or ``not node`` when ``neg``) satisfies."""
    if isinstance(node, Not):
        return over(node.child, not neg)
    if isinstance(node, (And, Or)):
        parts = [over(c, neg) for c in node.children]
        conj = isinstance(node, And) != neg  # De Morgan under a negation
        out = TOP if conj else BOTTOM
        for p in parts:
            out = out.meet(p) if conj else out.join(p)
        return out
    if isinstance(node, BinaryCheck):
        return _atom(node, neg)
    return TOP  # exists, identifiers (none after expansion): nothing the kernel can check


@dataclass(frozen=True, slots=True)
class RuleFilter:
    """One rule's contribution: its event types (None: all) and its Keep."""

    name: str
    evttypes: frozenset[str] | None
    keep: Keep


@dataclass
class TypeFilter:
    """What the kernel keeps for one event type, and the rules that made it so."""

    evttype: str
    keep: Keep = BOTTOM
    rules: list[str] = field(default_factory=list)
    unfiltered_by: list[str] = field(default_factory=list)  # rules giving TOP


def derive(rules: Iterable[RuleFilter], types: Iterable[str]) -> dict[str, TypeFilter]:
    """Per event type of ``types``: the join of the Keeps of the rules that can match it."""
    out = {t: TypeFilter(t) for t in sorted(types)}
    for rf in rules:
        for t in out if rf.evttypes is None else sorted(rf.evttypes & out.keys()):
            tf = out[t]
            tf.keep = tf.keep.join(rf.keep)
            tf.rules.append(rf.name)
            if rf.keep.top:
                tf.unfiltered_by.append(rf.name)
    return out


def rule_filters(rules: Iterable[object]) -> list[RuleFilter]:
    """RuleFilters of the enabled syscall rules of a loaded ruleset (``detector.rules``)."""
    out = []
    for r in rules:
        tree = getattr(r, "tree", None)
        if not getattr(r, "enabled", False) or getattr(r, "source", "") != "syscall":
            continue
        keep = TOP if tree is None else over(tree)
        out.append(RuleFilter(str(getattr(r, "name", "")), getattr(r, "evttypes", None), keep))
    return out
