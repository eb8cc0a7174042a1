"""Kernel filters from rules: every event a rule can match is kept (soundness), by exhaustion
over random conditions and by sampling events for the upstream rules files."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.kfilter.analysis import BOTTOM, SUCCESS, TOP, Keep, derive, over, rule_filters
from detector.rules.eval.mapping import FieldValueError, compile_for_mapping, typed_mapping
from detector.rules.lang.ast import BinaryCheck, ListNode, ValueNode, walk
from detector.rules.lang.parser import parse
from tests.realparts import need

COMMS = ("bash", "sshd", "cat", "zz")
RESULTS = (-13, -2, -1, 0, 1, 7)
PATHS = ("/etc/shadow", "/tmp/x")
RULES_DIR = Path("/work/shared/falco-rules")
FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def _errno(res: int) -> str:
    return "SUCCESS" if res >= 0 else {-13: "EACCES", -2: "ENOENT", -1: "EPERM"}[res]


def _universe() -> list[dict[str, Any]]:
    return [{"proc.name": c, "evt.rawres": r, "evt.res": _errno(r), "evt.failed": r < 0,
             "fd.name": p} for c, r, p in itertools.product(COMMS, RESULTS, PATHS)]  # fmt: skip


ATOMS = st.sampled_from([
    "proc.name = bash", "proc.name != sshd", "proc.name in (bash, cat)", "proc.name in (zz)",
    "proc.name startswith b", "evt.rawres >= 0", "evt.rawres > -1", "evt.rawres < 0",
    "evt.rawres = 0", "evt.rawres != 0", "evt.rawres > 3", "evt.rawres <= -2",
    "evt.failed = true", "evt.failed = false", "evt.res = SUCCESS", "evt.res != SUCCESS",
    "evt.res = ENOENT", "evt.res != ENOENT", "fd.name startswith /etc", "fd.name = /tmp/x",
])  # fmt: skip


def _conditions() -> st.SearchStrategy[str]:
    return st.recursive(ATOMS, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} and {b})", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ), max_leaves=6)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_conditions())
def test_a_random_condition_is_over_approximated(condition: str) -> None:
    cc = compile_for_mapping(condition)
    keep = over(parse(condition))
    for values in _universe():
        if cc(typed_mapping(cc, values)):
            assert keep.keeps(values["proc.name"], values["evt.rawres"]), (condition, values)


@settings(max_examples=150, deadline=None)
@given(st.lists(_conditions(), min_size=1, max_size=4))
def test_the_join_over_rules_keeps_what_any_rule_matches(conditions: list[str]) -> None:
    from detector.kfilter.analysis import RuleFilter

    rfs = [RuleFilter(f"r{i}", frozenset({"openat"}), over(parse(c)))
           for i, c in enumerate(conditions)]  # fmt: skip
    keep = derive(rfs, {"openat"})["openat"].keep
    for c in conditions:
        cc = compile_for_mapping(c)
        for values in _universe():
            if cc(typed_mapping(cc, values)):
                assert keep.keeps(values["proc.name"], values["evt.rawres"])


def test_what_the_kernel_can_check_is_kept_precisely() -> None:
    assert over(parse("proc.name in (a, b) and evt.rawres >= 0")) == Keep(
        comms=frozenset({"a", "b"}), success=True
    )
    assert over(parse("not proc.name in (a, b)")) == Keep(not_comms=frozenset({"a", "b"}))
    assert over(parse("proc.name = a or proc.name = b")) == Keep(comms=frozenset({"a", "b"}))
    assert over(parse("proc.name = a and proc.name = b")) == BOTTOM
    assert over(parse("evt.res = SUCCESS")) == SUCCESS
    assert over(parse("evt.res != ENOENT")) == TOP  # EACCES is no success either
    assert over(parse("fd.name startswith /etc")) == TOP
    assert over(parse("not proc.name in (a, b) or proc.name = a")) == Keep(
        not_comms=frozenset({"b"})
    )


def _sample_fields(rule: Any) -> dict[str, list[Any]]:
    """Candidate values per field a rule compares with constants: its constants and one more."""
    out: dict[str, list[Any]] = {}
    for node in walk(rule.tree):
        if isinstance(node, BinaryCheck) and node.left.__class__.__name__ != "Transformer":
            name = getattr(node.left, "name", None)
            if name is None or getattr(node.left, "arg", None) is not None:
                continue
            if isinstance(node.right, ValueNode):
                out.setdefault(name, []).append(node.right.value)
            elif isinstance(node.right, ListNode):
                out.setdefault(name, []).extend(node.right.items[:6])
    return out


@pytest.fixture(scope="module")
def upstream() -> list[Any]:
    need(all((RULES_DIR / f).exists() for f in FILES), f"the upstream rules in {RULES_DIR}")
    from detector.rules.load.loader import load_rules_files

    rs = load_rules_files([str(RULES_DIR / f) for f in FILES])
    return [r for r in rs.rules if r.enabled and r.source == "syscall" and r.tree is not None]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_upstream_rules_are_over_approximated(upstream: list[Any], data: st.DataObject) -> None:
    rule = upstream[data.draw(st.integers(0, len(upstream) - 1))]
    cc = compile_for_mapping(rule.tree)
    keep = over(rule.tree)
    cands = _sample_fields(rule)
    comm = data.draw(st.sampled_from([*cands.get("proc.name", []), "zz"]))
    res = data.draw(st.sampled_from(RESULTS))
    values: dict[str, Any] = {"proc.name": comm, "evt.rawres": res, "evt.res": _errno(res),
                              "evt.failed": res < 0}  # fmt: skip
    if rule.evttypes:
        values["evt.type"] = data.draw(st.sampled_from(sorted(rule.evttypes)))
    for name, vals in cands.items():
        if vals and name not in values and data.draw(st.booleans()):
            values[name] = data.draw(st.sampled_from(vals))
    try:
        mapping = typed_mapping(cc, values)
    except FieldValueError:
        return  # a constant of another type than the field's (a list field, a number)
    if cc(mapping):
        assert keep.keeps(comm, res), (rule.name, values)


def test_rules_that_cannot_be_approximated_leave_their_types_unfiltered(
    upstream: list[Any],
) -> None:
    filters = derive(rule_filters(upstream), {"execve", "setuid", "ptrace"})
    assert filters["execve"].keep.top and filters["execve"].unfiltered_by
    assert not filters["setuid"].keep.top and not filters["setuid"].unfiltered_by
    assert filters["setuid"].keep.not_comms  # the rule's `not proc.name in (...)` exceptions
