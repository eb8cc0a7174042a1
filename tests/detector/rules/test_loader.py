"""The rules loader: Falco's load semantics, errors with codes and locations, real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.rules.errors import RulesLoadError
from detector.rules.load.loader import (
    ENGINE_VERSION,
    RulesLoader,
    expand_paths,
    load_rules_files,
    validate_rules_files,
)

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "load_cases.json").read_text())["cases"]

RULE = """
- rule: {name}
  desc: d
  condition: {cond}
  output: "proc=%proc.name"
  priority: WARNING
"""


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"].split(".")[-1])
def test_falco_unit_vectors(case: dict[str, Any]) -> None:
    loader = RulesLoader()
    for step in case["steps"]:
        res = loader.load(step["rules_content"], step["filename"])
        exp = step["expect"]
        errors = [e.message for e in res.errors]
        warnings = [w.message for w in res.warnings]
        if "load_ok" in exp:
            assert res.successful == exp["load_ok"], errors
        for text in exp.get("errors_contain") or []:
            assert text is None or any(text in e for e in errors), errors
        for text in exp.get("warnings_contain") or []:
            assert text is None or any(text in w for w in warnings), warnings
        for text in exp.get("warnings_not_contain") or []:
            assert text is None or not any(text in w for w in warnings), warnings
        ruleset = loader.ruleset()
        for name, cond in (exp.get("compiled_condition") or {}).items():
            rule = ruleset.rule(name)
            assert rule is not None and rule.compiled_condition == cond
        enabled = (exp.get("num_enabled_rules") or {}).get("falco-default-ruleset")
        if enabled is not None:
            assert sum(r.enabled for r in ruleset.rules) == enabled


def test_yaml_scalars_stay_strings_and_lines_are_kept(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- list: ports\n  items: [80, 0755, on, yes]\n"
                 "- rule: r\n  desc: d\n  condition: evt.type=connect and proc.name in (ports)\n"
                 "  output: o\n  priority: INFO\n  enabled: on\n")
    rs = load_rules_files([f])
    assert rs.lists["ports"] == ("80", "0755", "on", "yes")
    rule = rs.rules[0]
    assert rule.enabled is True and rule.line == 3 and rule.path == str(f)
    assert rule.compiled_condition == "(evt.type = connect and proc.name in (80, 0755, on, yes))"


def test_files_load_in_order_and_share_definitions(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("- list: shells\n  items: [bash]\n- macro: spawned\n  condition: evt.type=execve\n"
                 + RULE.format(name="Shell", cond="spawned and proc.name in (shells)"))
    b.write_text("- list: shells\n  items: [zsh]\n  override:\n    items: append\n"
                 "- rule: Shell\n  condition: and proc.pname != sshd\n  override:\n"
                 "    condition: append\n")
    rs = load_rules_files([a, b])
    assert [r.successful for r in rs.results] == [True, True]
    assert rs.rules[0].compiled_condition == (
        "(evt.type = execve and proc.name in (bash, zsh) and proc.pname != sshd)")
    assert rs.rules[0].evttypes == frozenset({"execve"})
    with pytest.raises(RulesLoadError, match="no list by that name"):
        load_rules_files([b, a])


def test_macro_visibility_and_loops() -> None:
    loader = RulesLoader()
    res = loader.load("- macro: a\n  condition: b\n- macro: b\n  condition: evt.num=1\n"
                      + RULE.format(name="r", cond="a"), "m.yaml")
    assert [(e.code, e.message) for e in res.errors] == [
        ("LOAD_ERR_VALIDATE", "Undefined macro 'b' used in filter.")]
    assert res.errors[0].where == "m.yaml:1"
    loop = ("- macro: a\n  condition: evt.num=1\n- macro: b\n  condition: a\n"
            "- macro: a\n  condition: b\n" + RULE.format(name="r", cond="a"))
    res = RulesLoader().load(loop, "loop.yaml")
    assert any("reference loop in macro" in e.message for e in res.errors)


def test_exceptions_are_spliced_like_falco() -> None:
    text = RULE.format(name="r", cond="evt.type=open") + """  exceptions:
    - name: writers
      fields: [proc.name, fd.directory]
      comps: [=, in]
      values:
        - [apt, /usr/lib/apt]
        - [my app, [/a, /b]]
    - name: names
      fields: proc.pname
      values: [sshd, sudo]
"""
    loader = RulesLoader()
    res = loader.load(text, "e.yaml")
    assert res.successful, res.as_text()
    rule = loader.ruleset().rules[0]
    assert rule.compiled_condition == (
        '(evt.type = open and not ((proc.name = apt and fd.directory in (/usr/lib/apt)) or '
        '(proc.name = "my app" and fd.directory in (/a, /b))) and not proc.pname in (sshd, sudo))')
    assert rule.exception_fields == {"proc.name", "fd.directory", "proc.pname"}


def test_errors_carry_codes_and_locations() -> None:
    loader = RulesLoader()
    res = loader.load(RULE.format(name="r", cond="evt.type=open and proc.nobody=1"), "f.yaml")
    (err,) = res.errors
    assert err.code == "LOAD_ERR_COMPILE_CONDITION"
    assert err.message == "filter_check called with nonexistent field proc.nobody"
    assert err.hint and "did you mean" in err.hint
    assert err.where == "f.yaml:4"
    assert err.one_line().startswith("f.yaml:4: rule 'r': LOAD_ERR_COMPILE_CONDITION")
    res = RulesLoader().load(RULE.format(name="r", cond="evt.type=open and"), "g.yaml")
    assert res.errors[0].message == "expected blank or '(' after 'and'"
    as_json = res.as_json()
    assert as_json["successful"] is False
    assert as_json["errors"][0]["context"]["locations"][0]["item_type"] == "rule"  # type: ignore[index]


def test_collect_mode_reports_every_problem() -> None:
    text = (RULE.format(name="a", cond="proc.nobody=1") + RULE.format(name="b", cond="evt.type=")
            + "- macro: m\n  condition: undefined_thing\n- 42\n")
    falco_like = RulesLoader().load(text, "x.yaml")
    assert len(falco_like.errors) == 1
    collected = RulesLoader(collect=True).load(text, "x.yaml")
    assert len(collected.errors) == 4
    assert {e.code for e in collected.errors} == {
        "LOAD_ERR_YAML_VALIDATE", "LOAD_ERR_VALIDATE", "LOAD_ERR_COMPILE_CONDITION"}


@pytest.mark.parametrize("content", [
    b"\x00\x01\x02\xff\xfe binary", b"- rule: [unclosed", b"key: value", b"just text",
    b"- - nested", b"- rule: r\n  condition: " + b"(" * 5000 + b"a" + b")" * 5000,
    b"- rule: r\n  desc: d\n  output: o\n  priority: INFO\n  condition: " + b"x" * 10_000_000,
])
def test_bad_input_is_an_error_never_a_crash(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "bad.yaml"
    f.write_bytes(content)
    res = RulesLoader().load_file(f)
    assert not res.successful
    assert res.errors[0].code.startswith("LOAD_ERR_")


def test_missing_file_and_directories(tmp_path: Path) -> None:
    res = RulesLoader().load_file(tmp_path / "nope.yaml")
    assert res.errors[0].code == "LOAD_ERR_FILE_READ"
    (tmp_path / "b.yaml").write_text("[]\n")
    (tmp_path / "a.yml").write_text("[]\n")
    (tmp_path / "c.txt").write_text("x")
    assert expand_paths([tmp_path]) == [str(tmp_path / "a.yml"), str(tmp_path / "b.yaml")]


def test_engine_and_plugin_requirements(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- required_engine_version: 0.57.0\n- required_plugin_versions:\n"
                 "  - name: container\n    version: 0.4.0\n")
    assert load_rules_files([f]).required_engine_version == "0.57.0"
    f.write_text("- required_engine_version: 99.0.0\n")
    res = validate_rules_files([f])
    assert res.results[0].errors[0].message == (
        f"Rules require engine version 99.0.0, but engine version is {ENGINE_VERSION}")
    f.write_text("- required_plugin_versions:\n  - name: k8saudit\n    version: 0.1.0\n"
                 "    alternatives:\n      - name: container\n        version: 0.5.0\n")
    with pytest.raises(RulesLoadError, match=r"must load one of: k8saudit \(>= 0.1.0\), "
                                             r"container \(>= 0.5.0\)"):
        load_rules_files([f])
    assert load_rules_files([f], plugins={"container": "0.6.1"}).rules == ()


def test_unknown_source_is_kept_but_not_compiled() -> None:
    loader = RulesLoader()
    res = loader.load(RULE.format(name="r", cond="ct.name=x") + "  source: aws_cloudtrail\n",
                      "s.yaml")
    assert res.successful
    assert [w.message for w in res.warnings] == ["Unknown source aws_cloudtrail, skipping"]
    assert loader.ruleset().rules == ()


@pytest.mark.parametrize("cond, expected", [
    ("proc.name in (shells)", "proc.name in ( bash, \"my sh\" )"),
    ("proc.name in (shells, sh)", "proc.name in ( bash, \"my sh\" , sh)"),
    ("proc.name in (none, sh)", "proc.name in (   sh)"),
    ("proc.name = \"shells\"", "proc.name = \"shells\""),
    ("proc.env[shells] = x", "proc.env[shells] = x"),
    ("proc.name in (myshells)", "proc.name in (myshells)"),
])
def test_list_substitution_is_textual(cond: str, expected: str) -> None:
    # Byte-for-byte what Falco's resolve_list gives (checked against the upstream corpus).
    from detector.rules.load.rewrite import resolve_list

    text, _ = resolve_list(cond, "shells", ["bash", "my sh"])
    text, _ = resolve_list(text, "none", [])
    assert text == expected


def test_append_output_is_added_to_matching_rules(tmp_path: Path) -> None:
    from detector.rules.load.loader import AppendOutput

    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(name="a", cond="evt.type=open") + "  tags: [t1]\n"
                 + RULE.format(name="b", cond="evt.type=open"))
    rs = load_rules_files([f], append_output=[AppendOutput("uid=%user.uid", tags=frozenset({"t1"})),
                                              AppendOutput("all")])
    assert [r.output for r in rs.rules] == ["proc=%proc.name uid=%user.uid all",
                                            "proc=%proc.name all"]


_KEYS = st.sampled_from(["rule", "macro", "list", "condition", "output", "desc", "priority",
                         "items", "append", "override", "exceptions", "name", "fields", "comps",
                         "values", "enabled", "tags", "source", "required_engine_version",
                         "required_plugin_versions", "version", "alternatives"])
_SCALARS = st.one_of(st.sampled_from(["evt.type=open", "proc.name", "INFO", "append", "replace",
                                      "true", "x", "=", "in", "", "0.57.0", "a and", "("]),
                     st.text(max_size=8))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6), max_size=5))
def test_random_rules_files_give_results_not_crashes(items: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump(items)
    for collect in (False, True):
        res = RulesLoader(collect=collect).load(text, "fuzz.yaml")
        assert all(e.code.startswith("LOAD_ERR_") for e in res.errors)
