"""Exceptions spliced into a rule's condition as text, and their checks, as Falco does them."""

from __future__ import annotations

import pytest

from detector.rules.load.collector import Entry, ExceptionDef
from detector.rules.load.result import LoadFailure
from detector.rules.load.rewrite import check_exception, exception_condition


def _ex(fields: Entry, values: list[Entry], comps: Entry | None = None) -> ExceptionDef:
    return ExceptionDef(name="e", ctx=(), fields=fields, comps=comps, values=values)


def test_single_field_and_tuple_exceptions() -> None:
    one = _ex(Entry("proc.name"), [Entry("bash"), Entry("my sh")])
    rows = _ex(Entry(items=[Entry("proc.name"), Entry("fd.name")]),
               [Entry(items=[Entry("cat"), Entry("/etc/x")])],
               Entry(items=[Entry("="), Entry("startswith")]))
    text, fields = exception_condition("evt.type = open", [one, rows])
    assert text == ('(evt.type = open) and not (proc.name in (bash, "my sh"))'
                    " and not ((proc.name = cat and fd.name startswith /etc/x))")
    assert fields == {"proc.name", "fd.name"}


def test_exception_checks_reject_unknown_fields_and_operators() -> None:
    check_exception(_ex(Entry(items=[Entry("proc.name")]), []), "syscall")
    with pytest.raises(LoadFailure, match=r"'proc\.nope' is not a supported filter field"):
        check_exception(_ex(Entry("proc.nope"), []), "syscall")
    with pytest.raises(LoadFailure, match="'~=' is not a supported comparison operator"):
        check_exception(_ex(Entry(items=[Entry("proc.name")]), [], Entry(items=[Entry("~=")])),
                        "syscall")
