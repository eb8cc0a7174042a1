"""The reference evaluator on its own: Falco's semantics, written out plainly."""

from __future__ import annotations

import pytest

from detector.events import Event, ThreadInfo
from detector.rules.eval.mapping import compile_for_mapping, typed_mapping
from detector.rules.eval.reference import ReferenceEvaluator
from detector.rules.fields.registry import MappingProvider
from detector.rules.lang.parser import parse

MOCK = MappingProvider(types={"test.list": "CHARBUF", "test.other": "CHARBUF",
                              "test.charbuf": "CHARBUF", "test.missing": "CHARBUF"},
                       lists=frozenset({"test.list", "test.other"}))


def ref(cond: str, fields: dict[str, object]) -> bool:
    cc = compile_for_mapping(cond, MOCK)
    values = typed_mapping(cc, fields)
    return ReferenceEvaluator(parse(cond), MOCK)(values)


@pytest.mark.parametrize(("cond", "want"), [
    ("test.list in (a, b)", True), ("test.list in (a)", False),
    ("test.list intersects (a)", True), ("test.list intersects (z)", False),
    ("test.list in val(test.other)", True), ("test.list intersects val(test.other)", True),
    ("test.charbuf in val(test.list)", True), ("test.charbuf = val(test.missing)", False),
    ("len(test.list) = 2", True), ("test.list exists", True), ("test.missing exists", False),
    ("test.charbuf != x", True), ("test.missing != x", False), ("not test.missing = x", True),
])
def test_list_and_rhs_semantics(cond: str, want: bool) -> None:
    fields: dict[str, object] = {"test.list": ["a", "b"], "test.other": ["b", "a", "c"],
                                 "test.charbuf": "a"}
    assert ref(cond, fields) is want


@pytest.mark.parametrize(("cond", "want"), [
    ("proc.name startswith oneof (my, bash)", True),
    ("proc.name startswith oneof (my, mye)", False),
    ("proc.name contains allof (my, exe)", True),
    ("proc.name == anyof ()", False),
])
def test_modifiers(cond: str, want: bool) -> None:
    assert ref(cond, {"proc.name": "myexe"}) is want


def test_ancestors_match_any_and_rhs_missing_is_false() -> None:
    assert ref("proc.aname in (init)", {"proc.aname": ["bash", "init"]})
    assert not ref("proc.aname = good-exe", {"proc.aname": ["bash", "init"]})
    assert not ref("proc.aname = init", {})


def test_walks_detector_events() -> None:
    ev = Event(num=1, ts=0, type="execve", thread=ThreadInfo(tid=1, pid=1, comm="bash"))
    node = parse("evt.type = execve and (proc.name = sh or proc.name = bash)")
    assert ReferenceEvaluator(node)(ev) is True
    assert ReferenceEvaluator(parse("not proc.name in (bash)"))(ev) is False
