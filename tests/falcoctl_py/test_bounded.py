"""Bounded parsing: hostile YAML and JSON are refused with the project's own error, quickly."""

from __future__ import annotations

import pytest
import yaml

from falcoctl_py.bounded import InputLimitError, Limits, is_digits, loads_json, safe_load_yaml


def _laughs(levels: int) -> str:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(levels):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_deep_flow_nesting_refused_before_the_composer() -> None:
    with pytest.raises(InputLimitError, match=r"idx\.yaml: YAML nested more than 64"):
        safe_load_yaml("[" * 50_000, where="idx.yaml")


def test_deep_block_nesting_refused() -> None:
    text = "".join(" " * (2 * i) + f"k{i}:\n" for i in range(100)) + " " * 200 + "v\n"
    with pytest.raises(InputLimitError, match="nested more than"):
        safe_load_yaml(text, where="f")


def test_billion_laughs_refused() -> None:
    with pytest.raises(InputLimitError, match="expands to more than"):
        safe_load_yaml(_laughs(8), where="f")


def test_alias_count_bounded() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    with pytest.raises(InputLimitError, match="more than 10 aliases"):
        safe_load_yaml(text, where="f", limits=Limits(max_aliases=10))


def test_size_bounded() -> None:
    with pytest.raises(InputLimitError, match="over the limit of 10 bytes"):
        safe_load_yaml("a: 123456789012", where="f", limits=Limits(max_bytes=10))


def test_ordinary_yaml_with_aliases_loads() -> None:
    assert safe_load_yaml("a: &x [1, 2]\nb: *x\n", where="f") == {"a": [1, 2], "b": [1, 2]}
    assert safe_load_yaml("", where="f") is None


def test_yaml_syntax_errors_stay_yaml_errors() -> None:
    with pytest.raises(yaml.YAMLError):
        safe_load_yaml("a: [1, 2\n", where="f")


def test_json_depth_counted_outside_strings() -> None:
    assert loads_json('{"a": "[[[[[[", "b": [1]}', where="j", limits=Limits(max_depth=2)) == {
        "a": "[[[[[[",
        "b": [1],
    }
    with pytest.raises(InputLimitError, match="JSON nested more than 64"):
        loads_json("[" * 100_000 + "]" * 100_000, where="j")


def test_json_huge_number_is_a_limit_error() -> None:
    with pytest.raises(InputLimitError, match="JSON number too large"):
        loads_json("1" * 5000, where="j")


@pytest.mark.parametrize(("text", "digits"), [
    ("0", True), ("443", True), ("", False), ("\u00b2", False), ("\u0663", False), ("1a", False),
    (" 1", False),
])
def test_is_digits_takes_ascii_digits_only(text: str, digits: bool) -> None:
    assert is_digits(text) is digits
    if digits:
        assert int(text) >= 0
