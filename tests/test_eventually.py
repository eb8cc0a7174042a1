"""The shared wait helper returns the first truthy value and names what it waited for."""

from __future__ import annotations

import pytest

from tests.eventually import NotYet, eventually


def test_returns_first_truthy_value() -> None:
    calls = iter([None, 0, "ready"])
    assert eventually(lambda: next(calls), timeout=5) == "ready"


def test_reports_what_it_waited_for() -> None:
    with pytest.raises(NotYet, match=r"the file not reached within 0\.1 s"):
        eventually(lambda: None, timeout=0.1, what="the file")
