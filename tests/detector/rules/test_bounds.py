"""Hostile rules files get a located load error: deep YAML, aliases, macro and list bombs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.rules.errors import RulesLoadError
from detector.rules.load.loader import RulesLoader, load_rules_files, validate_rules_files
from detector.rules.load.yamlload import YamlError, load_documents
from falcoctl_py.errors import FalcoctlPyError

SMALL = (Path(__file__).parent / "data" / "small_rules.yaml").read_text()
RULE = "- rule: r\n  desc: d\n  condition: evt.type = open and {}\n  output: o\n  priority: INFO\n"


def macro_bomb(levels: int) -> str:
    """Each macro uses the previous one twice: 2**levels checks once expanded."""
    items = ["- macro: m0\n  condition: proc.name = a\n"]
    items += [f"- macro: m{i}\n  condition: (m{i - 1} or m{i - 1})\n" for i in range(1, levels + 1)]
    return "".join(items) + RULE.format(f"m{levels}")


def _validate_cli(path: Path) -> subprocess.CompletedProcess[str]:
    # A child process: a crash of the YAML parser must not take the test run with it.
    return subprocess.run([sys.executable, "-m", "falcoctl_py.cli.main", "rules", "validate",
                           str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("text", [
    "[" * 50_000 + "\n",
    "- rule: " + "[" * 50_000 + "\n",
    "- rule: " + "[" * 500 + "]" * 500 + "\n",
    "- rule: r\n  tags: " + "{a: " * 500 + "\n",
], ids=["50k-open", "50k-in-item", "500-closed", "500-maps"])
def test_deep_yaml_is_one_located_error_from_the_cli(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    proc = _validate_cli(path)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if "LOAD_ERR" in line]
    assert len(errors) == 1
    assert errors[0].strip().startswith(f"{path}:") and "YAML nested more than 64 levels" \
        in errors[0]
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stdout + proc.stderr


def test_deep_yaml_through_the_loader_and_the_detector_entry(tmp_path: Path) -> None:
    text = "- list: l\n  items: " + "[" * 500 + "]" * 500 + "\n"
    with pytest.raises(YamlError) as info:
        load_documents(text)
    assert info.value.mark.line == 1 and "nested more than" in str(info.value)
    res = RulesLoader().load(text, "deep.yaml")
    assert [e.code for e in res.errors] == ["LOAD_ERR_YAML_PARSE"]
    assert res.errors[0].one_line().startswith("deep.yaml:2: ")
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(RulesLoadError) as err:
        load_rules_files([path])  # what the detector runs at start and on hot reload
    assert err.value.path == str(path) and "nested more than" in str(err.value)


def test_alias_bomb_is_refused() -> None:
    lines = ["- list: l0\n  items: &a0 [x, x, x, x, x, x, x, x, x, x]\n"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"- list: l{i}\n  items: &a{i} [{refs}]\n")
    text = "".join(lines)
    assert len(text) < 1024
    res = RulesLoader().load(text, "laughs.yaml")
    assert [e.code for e in res.errors] == ["LOAD_ERR_YAML_PARSE"]
    assert "aliases expanded" in res.errors[0].message


def test_macro_bomb_fails_naming_the_macro_and_the_limit() -> None:
    text = macro_bomb(40)
    assert len(text) < 2048
    res = RulesLoader(collect=True).load(text, "bomb.yaml")
    first = res.errors[0]
    assert first.code == "LOAD_ERR_VALIDATE"
    assert first.message == ("Macro 'm15' expands to 65535 condition nodes, over the limit of "
                             "50000")
    assert first.one_line().startswith("bomb.yaml:31: macro 'm15': ")
    assert "doubles in size" in first.hint
    # Macros built on it fail with the same cause; the rule is not compiled.
    assert all("Macro 'm15'" in e.message for e in res.errors)
    assert res.errors[-1].item == "rule 'r'"


def test_macro_bomb_below_the_limit_still_loads() -> None:
    loader = RulesLoader()
    res = loader.load(macro_bomb(12), "ok.yaml")
    assert res.successful
    assert loader.ruleset().rule("r") is not None


def test_first_error_mode_stops_at_the_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(macro_bomb(40))
    with pytest.raises(RulesLoadError) as err:
        load_rules_files([path])
    assert "Macro 'm15' expands to" in str(err.value) and err.value.line == 31


def test_a_long_macro_chain_is_a_depth_error_not_a_recursion_error() -> None:
    items = ["- macro: m0\n  condition: proc.name = a\n"]
    items += [f"- macro: m{i}\n  condition: (m{i - 1} and proc.name = a)\n"
              for i in range(1, 3001)]
    res = RulesLoader().load("".join(items) + RULE.format("m3000"), "chain.yaml")
    assert res.errors[0].message == ("Macro 'm200' expands to a condition 201 levels deep, over "
                                     "the limit of 200")


def test_a_rule_using_a_big_macro_many_times_is_refused() -> None:
    text = macro_bomb(14) + RULE.replace("rule: r", "rule: r2").format(
        "(" + " or ".join(["m14"] * 8) + ")")
    res = RulesLoader().load(text, "many.yaml")
    assert res.errors[0].item == "rule 'r2'"
    assert res.errors[0].message == ("Rule 'r2' expands to 262139 condition nodes, over the "
                                     "limit of 50000")


def test_list_of_lists_bomb_is_refused() -> None:
    items = ", ".join(["x"] * 300)
    refs = ", ".join(["l0"] * 300)
    text = (f"- list: l0\n  items: [{items}]\n- list: l1\n  items: [{refs}]\n"
            + RULE.format("proc.name in (l1)"))
    res = RulesLoader().load(text, "lists.yaml")
    assert res.errors[0].message == "List 'l1' expands to 90000 items, over the limit of 50000"
    assert res.errors[0].one_line().startswith("lists.yaml:3: list 'l1': ")


def test_validate_reports_every_bound_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(macro_bomb(18))
    (result,) = validate_rules_files([path]).results
    assert not result.successful
    assert {e.code for e in result.errors} == {"LOAD_ERR_VALIDATE"}


_NOISE = st.sampled_from([*"[]{}:,-&*!|>'\"#?%@` \n\t", "\n- ", ": ", "- macro: ", "&a ", "*a",
                          "---\n"])


@settings(max_examples=200, deadline=10_000)  # ms: a bound, far above the usual few ms
@given(st.data())
def test_mutated_rules_yaml_raises_only_project_errors(data: st.DataObject) -> None:
    text = SMALL if data.draw(st.booleans()) else macro_bomb(8)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "repeat"]))
        if action == "insert":
            text = text[:at] + data.draw(_NOISE) * data.draw(st.integers(1, 80)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 40)):]
        else:
            piece = text[at:at + data.draw(st.integers(1, 60))]
            text = text[:at] + piece * data.draw(st.integers(2, 40)) + text[at:]
    for collect in (False, True):
        loader = RulesLoader(collect=collect)
        try:
            res = loader.load(text, "mutated.yaml")
            loader.ruleset()
        except FalcoctlPyError:
            continue
        assert all(e.code.startswith("LOAD_ERR_") for e in res.errors)
        assert all(e.one_line() for e in res.errors + res.warnings)


@pytest.mark.parametrize(("text", "code", "what"), [
    ("- required_engine_version: '\u00b2'\n", "LOAD_ERR_YAML_VALIDATE", "engine version"),
    (RULE.replace("output: o", "output: '%\u00b2proc.name'").format("proc.name = a"),
     "LOAD_ERR_COMPILE_OUTPUT", "formatting token"),
    (RULE.format("proc.aname[\u00b2] = a"), "LOAD_ERR_COMPILE_CONDITION", "expected a number"),
    (RULE.format("evt.arg[\u0663] = a"), "LOAD_ERR_COMPILE_CONDITION", "unknown event argument"),
], ids=["engine-version", "output-width", "aname-index", "arg-index"])
def test_non_ascii_digits_are_load_errors(text: str, code: str, what: str) -> None:
    # str.isdigit() takes "²" and "٣"; int() refuses the first and reads the second as 3.
    res = RulesLoader().load(text, "digits.yaml")
    assert [e.code for e in res.errors] == [code]
    assert what in res.errors[0].one_line()
