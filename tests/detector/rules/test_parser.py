"""The condition parser against libsinsp's vectors, bad input, and random text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.rules.errors import ConditionSyntaxError
from detector.rules.lang.ast import (
    And,
    BinaryCheck,
    FieldRef,
    Identifier,
    Not,
    Or,
    UnaryCheck,
    ValueNode,
    as_string,
    to_json,
)
from detector.rules.lang.escaping import EscapeError, escape_str, unescape_str
from detector.rules.lang.parser import canonical, parse
from falcoctl_py.errors import LocatedError

DATA = json.loads((Path(__file__).parent / "data" / "parser_cases.json").read_text())


@pytest.mark.parametrize("case", DATA["parse"], ids=lambda c: c["input"][:40])
def test_parser_vectors(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ConditionSyntaxError) as info:
            parse(case["input"])
        assert info.value.bare_message == case["error"]
        assert [info.value.idx, info.value.cond_line, info.value.cond_col] == case["error_pos"]
        return
    tree = parse(case["input"])
    assert to_json(tree) == case["ast"]
    assert as_string(tree) == case["as_string"]
    if "ast_with_pos" in case:
        assert to_json(tree, with_pos=True) == case["ast_with_pos"]


@pytest.mark.parametrize("case", DATA["corpus"], ids=lambda c: c["condition"][:40])
def test_real_ruleset_conditions_canonical(case: dict[str, str]) -> None:
    assert canonical(case["condition"]) == case["as_string"]


def test_escaping_vectors() -> None:
    for case in DATA["escaping"]:
        text = case["input"]
        if case["kind"] == "escape_str":
            assert escape_str(text) == case["expected"]
        elif case["kind"] == "escape_roundtrip" and text is not None:
            assert unescape_str(escape_str(text)) == text or escape_str(text) == text
        elif case.get("expect") == "error":
            with pytest.raises(EscapeError):
                unescape_str(text)


def test_hex_escape_gives_the_byte() -> None:
    assert unescape_str('"\\x41"') == "A"
    node = parse('proc.name = "a\\xffb"')
    assert isinstance(node, BinaryCheck) and isinstance(node.right, ValueNode)
    assert node.right.value.encode("utf-8", "surrogateescape") == b"a\xffb"


def test_precedence_and_shape() -> None:
    tree = parse("a or b and not c")
    assert tree == Or((parse("a"), And((parse("b"), Not(parse("c"))))))
    assert as_string(parse("(a or b) or c")) == "((a or b) or c)"
    assert as_string(parse("not not a")) == "a"
    expected = BinaryCheck(FieldRef("proc.aname", "2"), "=", ValueNode("bash"))
    assert parse("proc.aname[2] = bash") == expected
    text = "proc.name in ('some proc', apache)"
    assert as_string(parse(text)) == 'proc.name in ("some proc", apache)'


def test_error_is_located_with_a_caret() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse("proc.name = bash and\n  fd.name ==")
    err = info.value
    assert isinstance(err, LocatedError)
    assert (err.cond_line, err.cond_col) == (2, 13)
    assert err.caret() == "  fd.name ==\n            ^"
    assert "line 2, column 13" in err.describe()


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConditionSyntaxError, match="exceeded max depth limit of 1000"):
        parse("(" * 5000 + "a" + ")" * 5000)
    with pytest.raises(ConditionSyntaxError, match="exceeded max depth"):
        parse("not " * 10 + "(" * 300 + "a" + ")" * 300)
    assert as_string(parse("(" * 150 + "a" + ")" * 150)) == "a"


def test_huge_condition_is_handled() -> None:
    big = " or ".join(f"proc.name = p{i}" for i in range(50_000))  # ~ 1 MB
    tree = parse(big)
    assert isinstance(tree, Or) and len(tree.children) == 50_000
    with pytest.raises(ConditionSyntaxError, match="unexpected token"):
        parse(big + " )")
    ten_mb = "proc.name = " + "x" * 10_000_000
    with pytest.raises(ConditionSyntaxError, match="unexpected token after 'x") as info:
        parse(ten_mb + " (")
    assert info.value.idx == len(ten_mb) + 1
    assert len(info.value.message) < 200  # the token is shortened in the message
    assert parse("x" * 1_000_000) == Identifier("x" * 1_000_000)  # no quadratic regex
    assert isinstance(parse("a." * 500_000 + "b exists"), UnaryCheck)
    with pytest.raises(ConditionSyntaxError, match="expected a '\\(' token"):
        parse("\0" * 5_000_000)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
       | st.text(alphabet="()'\"\\ =,.abnotdrx[]!<>0\t\n", max_size=60))
def test_random_text_raises_only_syntax_errors(text: str) -> None:
    try:
        tree = parse(text)
    except ConditionSyntaxError:
        return
    as_string(tree)
