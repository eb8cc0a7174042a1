"""``falcoctl-py rules validate|list|parse`` as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.falcoctl_py.cli.clirun import run_cli

RULES = Path(__file__).parents[2] / "detector" / "rules" / "data" / "small_rules.yaml"
BAD = """- rule: r
  desc: d
  condition: evt.type=open and proc.nobody=1
  output: o
  priority: INFO
- macro: m
  condition: undefined_one
"""


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "rules", "validate", str(RULES))
    assert res.code == 0
    assert res.stdout.splitlines()[0] == f"{RULES}: Ok"


def test_validate_reports_every_error_with_location(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    res = run_cli(capsys, "rules", "validate", str(RULES), str(bad))
    assert res.code == 1
    assert f"{bad}: Invalid" in res.stdout
    assert f"{bad}:3: rule 'r': LOAD_ERR_COMPILE_CONDITION: filter_check called with " \
           "nonexistent field proc.nobody" in res.stdout
    assert f"{bad}:6: macro 'm': LOAD_ERR_VALIDATE: Undefined macro 'undefined_one' used in " \
           "filter." in res.stdout
    first = run_cli(capsys, "rules", "validate", "--first-error", str(bad))
    assert first.stdout.count("LOAD_ERR_") == 1


def test_validate_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    res = run_cli(capsys, "rules", "validate", "-o", "json", str(RULES), str(bad))
    assert res.code == 1
    results = json.loads(res.stdout)["falco_load_results"]
    assert [r["successful"] for r in results] == [True, False]
    err = results[1]["errors"][0]
    assert err["code"] and err["context"]["locations"][0]["position"]["name"] == str(bad)
    assert any(w["code"] == "LOAD_UNUSED_MACRO" for w in results[1]["warnings"])


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "rules", "list", "-o", "json", str(RULES))
    assert res.code == 0
    rules = json.loads(res.stdout)
    assert [r["name"] for r in rules][:2] == ["Run shell untrusted", "Any shell"]
    assert rules[0]["priority"] == "Notice" and rules[0]["evttypes"] == ["execve", "execveat"]
    human = run_cli(capsys, "rules", "list", str(RULES))
    assert "Read sensitive file" in human.stdout and "Disabled rule" in human.stdout


def test_list_of_a_broken_file_fails_in_one_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    res = run_cli(capsys, "rules", "list", str(bad))
    assert res.code == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1  # Falco stops at the first error: macros compile first
    assert f"{bad}:6: Undefined macro 'undefined_one' used in filter." in res.stderr


def test_parse(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "rules", "parse", "proc.name in ('some proc', apache) or a and b")
    assert res.code == 0
    assert res.stdout == '(proc.name in ("some proc", apache) or (a and b))\n'
    bad = run_cli(capsys, "rules", "parse", "proc.name = bash and\n  fd.name ==")
    assert bad.code == 1 and bad.stdout == ""
    assert bad.stderr.splitlines()[-2:] == ["  fd.name ==", "            ^"]
    assert "(line 2, column 13)" in bad.stderr


def test_parse_batch(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "rules", "parse", "--batch",
                  stdin="a or b and c\nproc.name ==\n\nnot not x\n")
    assert res.code == 0
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines == [
        {"ok": True, "canonical": "(a or (b and c))", "error": None},
        {"ok": False, "canonical": None, "error": "expected a string value or a field with a "
         "valid transformer: 'val', 'tolower', 'toupper', 'b64', 'basename', 'len', 'join', "
         "'concat', 'getopt'"},
        {"ok": False, "canonical": None, "error": "filter input string is empty"},
        {"ok": True, "canonical": "x", "error": None},
    ]
    both = run_cli(capsys, "rules", "parse", "--batch", "x")
    assert both.code == 2
