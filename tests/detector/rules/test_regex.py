"""``regex`` runs on RE2 as in Falco; ``glob`` matches in linear time."""

from __future__ import annotations

import pytest

from detector.rules.eval.mapping import eval_condition
from detector.rules.eval.regex import Regex, RegexError
from detector.rules.eval.values import glob_regex


def _eval(condition: str, **fields: object) -> bool | None:
    res = eval_condition(condition=condition, fields={k.replace("_", "."): v
                                                      for k, v in fields.items()})
    assert res.ok, res.error
    return res.result


@pytest.mark.parametrize("pattern, value, expected", [
    ("syscal.*", "syscall", True),
    ("yscal.*", "syscall", False),  # a full match, not a search
    (".*yscal", "syscall", False),
    ("^[s]{1}ysca[l]{2}$", "syscall", True),
    ("[[:digit:]]+", "2024", True),  # POSIX classes
    ("a.b", "a\nb", False),  # RE2's default: "." does not match a newline
    ("/p./q.", "/p\udcff/q\udcff", True),  # invalid UTF-8 becomes U+FFFD, matched by "."
    ("(a|ab)(c|bcd)", "abcd", True),
])
def test_regex_is_an_re2_full_match(pattern: str, value: str, expected: bool) -> None:
    assert Regex(pattern).fullmatch(value) is expected


@pytest.mark.parametrize("pattern, spelled", [
    (r"\d+", r"\d+"),  # bare strings keep their backslashes
    (r"\bword", r"\bword"),
    ("(?i)abc", "'(?i)abc'"),
    ("(unclosed", "'(unclosed'"),
])
def test_non_posix_or_broken_patterns_are_load_errors(pattern: str, spelled: str) -> None:
    with pytest.raises(RegexError):
        Regex(pattern)
    res = eval_condition(condition=f"proc.name regex {spelled}", fields={})
    assert not res.ok and res.error is not None
    assert f"invalid regular expression '{pattern}'" in res.error


def test_backtracking_patterns_return_at_once() -> None:
    # Python's re takes minutes on 35 characters here; RE2 is linear in the value.
    assert _eval("proc.name regex '(a+)+b'", proc_name="a" * 100_000) is False
    assert _eval("proc.name regex '(a|aa)*c'", proc_name="a" * 100_000) is False
    assert _eval("proc.name regex '(a+)+'", proc_name="a" * 100_000) is True


def test_glob_with_many_stars_returns_at_once() -> None:
    pattern = "*a*a*a*a*a*a*a*a*b"
    assert glob_regex(pattern).fullmatch("a" * 20_000) is None
    assert glob_regex(pattern).fullmatch("a" * 20_000 + "b") is not None
    assert _eval(f"proc.name glob '{pattern}'", proc_name="a" * 5_000) is False


@pytest.mark.parametrize("pattern, value, expected", [
    ("*.sh", "/tmp/x.sh", True),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "acb", False),
    ("*ab*ab", "abab", True),
    ("*ab*ab", "aab", False),
    ("[z-a]", "m", False),  # a reversed range matches nothing (it used to crash the compiler)
    ("[!z-a]x", "mx", True),
])
def test_glob_keeps_fnmatch_semantics(pattern: str, value: str, expected: bool) -> None:
    assert (glob_regex(pattern).fullmatch(value) is not None) is expected


def test_the_public_binding_api_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from detector.rules.eval import regex

    monkeypatch.setattr(regex, "_native", None)  # as with a binding laid out differently
    assert Regex("syscal.*").fullmatch("syscall") is True
    assert Regex("yscal.*").fullmatch("syscall") is False
    assert Regex("/p./q.").fullmatch("/p\udcff/q\udcff") is True
    assert Regex("(a+)+b").fullmatch("a" * 100_000) is False
    with pytest.raises(RegexError):
        Regex(r"\d")
