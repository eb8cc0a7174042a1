"""The conformance runner: on a tiny folder shaped like the upstream one, and on the real one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.conformance import main, run

DATA = Path(__file__).parents[1] / "detector" / "rules" / "data"
ROOT = Path(__file__).parents[2]
SHARED = ROOT.parent / "shared"


def _write(folder: Path) -> None:
    parse = json.loads((DATA / "parser_cases.json").read_text())
    cases = []
    for c in parse["parse"][:6]:
        harness = {"ok": "error" not in c}
        harness.update({k: c[k] for k in ("ast", "as_string", "error", "error_pos") if k in c})
        cases.append({"kind": "parse", "input": c["input"], "expect": "accept", "harness": harness})
    cases.append({"kind": "parse", "input": "proc.name == oneof (a)", "expect": "accept",
                  "harness": {"ok": True, "as_string": "proc.name == oneof (a)"},
                  "features": ["str_op_modifier"], "features_introduced_in": ["libs 0.25.0"]})
    (folder / "parser_cases.json").write_text(json.dumps({"cases": cases}))
    (folder / "escaping_cases.json").write_text(json.dumps({"cases": parse["escaping"][:6]}))
    load = json.loads((DATA / "load_cases.json").read_text())["cases"][:3]
    (folder / "rules_load_cases.json").write_text(json.dumps({
        "falco_unit_tests": load,
        "falco_cli_tests": [{"name": "t", "mode": "validate", "options": [],
                             "rules_files": [{"filename": "bad.yaml"}],
                             "expectations": [{"type": "error_present", "match": {
                                 "Code": "LOAD_ERR_VALIDATE", "ItemType": "macro",
                                 "ItemName": "m", "Message": "Undefined macro 'x' used in "
                                                             "filter."}},
                                 {"type": "exit_code", "value": 1}]}],
        "testing_repo_rules_files": {"Bad": {"filename": "bad.yaml",
                                             "content": "- macro: m\n  condition: x\n"}},
        "condition_warning_cases": [{"condition": "ka.user.name = <NA>", "expect_warning": True,
                                     "warning_codes_possible": ["LOAD_UNSAFE_NA_CHECK"]}],
    }))


def test_runner_counts_suites_and_stretch(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    conf, rules = tmp_path / "conformance", tmp_path / "rules"
    conf.mkdir()
    rules.mkdir()
    _write(conf)
    shutil.copy(DATA / "small_rules.yaml", rules / "falco_rules.yaml")
    scores = {s.name: s for s in run(conf, rules)}
    assert (scores["parser"].passed, scores["parser"].total) == (6, 6)
    assert (scores["parser"].s_passed, scores["parser"].s_total) == (1, 1)
    assert scores["rules_load"].passed == scores["rules_load"].total == 3
    assert scores["falco_cli_load"].passed == 1
    assert scores["upstream_rules_load"].passed == 1
    assert main([str(conf), str(rules)]) in (0, 1)
    out = capsys.readouterr().out.splitlines()
    assert "parser: 6/6" in out and "parser (stretch): 1/1" in out
    assert "upstream_rules_load: 1/1" in out


def test_runner_usage_errors(tmp_path: Path) -> None:
    assert main([]) == 2
    assert main([str(tmp_path / "missing")]) == 2


def test_make_conformance_passes_on_the_upstream_vectors() -> None:
    conf, rules = SHARED / "conformance", SHARED / "falco-rules"
    if not (conf / "eval_cases.json").is_file() or not rules.is_dir():
        pytest.skip(f"the upstream conformance vectors are not here ({conf}, {rules})")
    proc = subprocess.run([sys.executable, "-m", "tools.conformance", str(conf), str(rules)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "upstream_rules_load: 3/3" in lines
    assert any(line.startswith("eval: ") for line in lines)
