"""Conformance runner: the project's rules engine against the upstream-derived vectors.

Run as ``python -m tools.conformance CONFORMANCE_DIR RULES_DIR``. Prints
``<suite>: <passed>/<total>`` per suite for cases whose features exist in Falco 0.42, and
``<suite> (stretch): <passed>/<total>`` for newer ones. Exit status 1 when a Falco-0.42 case
fails or an upstream rules file does not load.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.rules.errors import ConditionSyntaxError
from detector.rules.lang.ast import as_string, to_json
from detector.rules.lang.escaping import EscapeError, escape_str, unescape_str
from detector.rules.lang.parser import parse
from detector.rules.load.loader import AppendOutput, RulesLoader, expand_paths
from tools.conformance.eval_suite import run_eval_suite

UPSTREAM_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
_NEW_FEATURES = ("str_op_modifier", "transformer:join", "transformer:concat", "transformer:getopt",
                 "transformer_list", "transformer_arg", "hex_escape")
_EXTRA = re.compile(r'add_extra_output_format \( "([^"]*)" , "([^"]*)" , '
                    r'\{([^}]*)\} , "([^"]*)" \)')
_NEW_LOADER = re.compile(r"\b(oneof|anyof|allof)\b|Unknown key|typo_field")


@dataclass
class Score:
    """Passed/total for Falco-0.42 cases and for newer (stretch) ones, with failure samples."""

    name: str
    passed: int = 0
    total: int = 0
    s_passed: int = 0
    s_total: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, ok: bool, *, stretch: bool = False, label: str = "") -> None:
        if stretch:
            self.s_total += 1
            self.s_passed += ok
        else:
            self.total += 1
            self.passed += ok
            if not ok and len(self.failures) < 5:
                self.failures.append(label)

    def lines(self) -> list[str]:
        out = [f"{self.name}: {self.passed}/{self.total}"]
        if self.s_total:
            out.append(f"{self.name} (stretch): {self.s_passed}/{self.s_total}")
        return out


def _newer(case: dict[str, Any]) -> bool:
    for text in case.get("features_introduced_in") or []:
        m = re.search(r"libs (\d+)\.(\d+)", text)
        if "HEAD" in text or (m and (int(m[1]), int(m[2])) > (0, 22)):
            return True
    return any(f in _NEW_FEATURES for f in case.get("features") or [])


def _parse_result(text: str) -> dict[str, Any]:
    try:
        tree = parse(text)
    except ConditionSyntaxError as exc:
        return {"ok": False, "error": exc.bare_message, "error_pos": [exc.idx, exc.cond_line,
                                                                       exc.cond_col]}
    return {"ok": True, "ast": to_json(tree), "ast_with_pos": to_json(tree, with_pos=True),
            "as_string": as_string(tree)}


def parser_suite(path: Path) -> Score:
    score = Score("parser")
    for case in json.loads(path.read_text())["cases"]:
        h, text = case["harness"], case["input"]
        got = _parse_result(text)
        ok = all(got.get(k) == v for k, v in h.items() if k in got)
        if ok and case.get("as_string_expected"):
            ok = got.get("as_string") == case["as_string_expected"]
        if ok and case.get("as_string_roundtrip"):
            again = _parse_result(got["as_string"])
            ok = again.get("as_string") == got["as_string"]
        if ok and case.get("whitespace_variants"):
            variants = (f" {text} ", text.replace(" ", "\n"), text.replace(" ", "\t"))
            ok = all(_parse_result(v)["ok"] for v in variants)
        score.add(ok, stretch=_newer(case), label=text)
    return score


def escaping_suite(path: Path) -> Score:
    score = Score("escaping")
    for case in json.loads(path.read_text())["cases"]:
        text, kind = case["input"], case["kind"]
        stretch = "\\x" in (text or "")
        if text is None:
            continue
        try:
            if kind == "escape_str":
                ok = escape_str(text) == case["expected"]
            elif kind == "escape_roundtrip":
                esc = escape_str(text)
                ok = esc == text or unescape_str(esc) == text
            elif case.get("expect") == "error":
                try:
                    unescape_str(text)
                    ok = False
                except EscapeError:
                    ok = True
            else:
                value = unescape_str(text)
                want = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m[1], 16)), text[1:-1])
                ok = value == want
        except (EscapeError, UnicodeEncodeError):
            ok = False
        score.add(ok, stretch=stretch, label=str(text))
    return score


def corpus_suite(path: Path) -> Score:
    score = Score("ruleset_corpus")
    for case in json.loads(path.read_text())["cases"]:
        for text_key, ok_key, exp_key in (("raw_condition", "raw_parse_ok", "raw_as_string"),
                                          ("list_expanded_condition", "expanded_parse_ok",
                                           "expanded_as_string")):
            got = _parse_result(case[text_key])
            ok = got["ok"] == case[ok_key] and (not got["ok"] or got["as_string"] == case[exp_key])
            score.add(ok, label=case[text_key][:80])
    return score


def _messages(result: Any, kind: str) -> list[str]:
    return [m.message for m in getattr(result, kind)]


def _check_step(loader: RulesLoader, step: dict[str, Any]) -> bool:
    res = loader.load(step["rules_content"] or "", step.get("filename") or "rules.yaml")
    exp = step.get("expect", {})
    errs, warns = _messages(res, "errors"), _messages(res, "warnings")
    checks: list[bool] = []
    if "load_ok" in exp:
        checks.append(res.successful == exp["load_ok"])
    for s in exp.get("errors_contain") or []:
        if s is not None:
            checks.append(any(s in e for e in errs))
    for s in exp.get("warnings_contain") or []:
        if s is not None:
            checks.append(any(s in w for w in warns))
    for s in exp.get("warnings_not_contain") or []:
        if s is not None:
            checks.append(not any(s in w for w in warns))
    if "has_warnings" in exp:
        checks.append(bool(warns) == exp["has_warnings"])
    if exp.get("compiled_condition") or exp.get("num_enabled_rules") or exp.get("compiled_output"):
        rs = loader.ruleset()
        for name, cond in (exp.get("compiled_condition") or {}).items():
            rule = rs.rule(name)
            checks.append(rule is not None and rule.compiled_condition == cond)
        for name, out in (exp.get("compiled_output") or {}).items():
            rule = rs.rule(name)
            checks.append(rule is not None and rule.output == out)
        default = (exp.get("num_enabled_rules") or {}).get("falco-default-ruleset")
        if default is not None:
            checks.append(sum(r.enabled for r in rs.rules) == default)
    return all(checks)


def unit_suite(data: dict[str, Any]) -> Score:
    score = Score("rules_load")
    for test in data["falco_unit_tests"]:
        if any("enable_rule" in line for line in test.get("script") or []):
            continue  # exercises the engine's enable/disable API, not loading
        extras = []
        for line in test.get("script") or []:
            m = _EXTRA.search(line)
            if m:
                tags = frozenset(re.findall(r'"([^"]*)"', m[3]))
                extras.append(AppendOutput(m[1], m[2], tags, m[4]))
        loader = RulesLoader(check_outputs=True, append_output=extras)
        ok = True
        for step in test["steps"]:
            ok = _check_step(loader, step) and ok
        text = json.dumps(test["steps"])
        score.add(ok, stretch=bool(_NEW_LOADER.search(text)), label=test["name"])
    return score


def _match(msg: Any, want: dict[str, str]) -> bool:
    if msg.code != want.get("Code"):
        return False
    if "Message" in want and msg.message != want["Message"]:
        return False
    if "ItemType" not in want:
        return True
    return any(loc.item_type.lower() == want["ItemType"].lower()
               and loc.item_name == want.get("ItemName", loc.item_name) for loc in msg.locations)


def cli_suite(data: dict[str, Any], rules_dir: Path | None = None) -> Score:
    score = Score("falco_cli_load")
    files = {v["filename"]: v["content"] for v in data["testing_repo_rules_files"].values()
             if isinstance(v.get("content"), str)}
    if rules_dir is not None and (rules_dir / "falco_rules.yaml").exists():
        files["falco_rules.yaml"] = (rules_dir / "falco_rules.yaml").read_text()
    for test in data["falco_cli_tests"]:
        names = [f["filename"] for f in test["rules_files"]]
        if not names or any(n not in files for n in names):
            continue
        if any(o["option"] == "WithConfig" for o in test["options"]):
            continue  # the outcome depends on a falco.yaml setting, not on loading rules
        expectations = [e for e in test["expectations"]
                        if e["type"] in ("error", "no_error", "error_present", "warning_present",
                                         "exit_code", "file_successful", "error_count",
                                         "warning_count")]
        if not expectations:
            continue
        loader = RulesLoader(collect=False)
        results = []
        for n in names:
            res = loader.load(files[n], n)
            results.append(res)
            if test["mode"] == "run" and not res.successful:
                break
        errors = [e for r in results for e in r.errors]
        warnings = [w for r in results for w in r.warnings]
        ok = True
        for e in expectations:
            t = e["type"]
            if t == "error":
                ok &= bool(errors)
            elif t == "no_error":
                ok &= not errors
            elif t == "error_present":
                ok &= any(_match(m, e["match"]) for m in errors)
            elif t == "warning_present":
                ok &= any(_match(m, e["match"]) for m in warnings)
            elif t == "exit_code":
                ok &= (1 if errors else 0) == e["value"]
            elif t == "file_successful":
                idx = e.get("index", 0)
                ok &= idx < len(results) and results[idx].successful == e["value"]
            elif t == "error_count":
                ok &= len(errors) == e.get("count", e.get("value"))
            elif t == "warning_count":
                ok &= len(warnings) == e.get("count", e.get("value"))
        text = json.dumps([files[n] for n in names])
        score.add(ok, stretch=bool(_NEW_LOADER.search(text)), label=test["name"])
    return score


def warning_suite(data: dict[str, Any]) -> Score:
    score = Score("condition_warnings")
    for case in data["condition_warning_cases"]:
        content = (f"- rule: r\n  desc: d\n  condition: evt.type=open and ({case['condition']})\n"
                   "  output: o\n  priority: INFO\n")
        loader = RulesLoader(check_outputs=False)
        res = loader.load(content, "w.yaml")
        codes = {w.code for w in res.warnings}
        got = bool(codes & set(case.get("warning_codes_possible") or []))
        score.add(got == case["expect_warning"], label=case["condition"])
    return score


def upstream_suite(rules_dir: Path) -> Score:
    score = Score("upstream_rules_load")
    loader = RulesLoader()
    for name in UPSTREAM_FILES:
        path = rules_dir / name
        if not path.exists():
            continue
        res = loader.load_file(path)
        res.errors.extend(loader.check_plugin_requirements())
        score.add(res.successful, label=name)
        for e in res.errors[:3]:
            score.failures.append(e.one_line())
    return score


def eval_suite(path: Path) -> Score | None:
    passed, total, s_passed, s_total = run_eval_suite(path)
    return Score("eval", passed, total, s_passed, s_total)


def run(conformance_dir: Path, rules_dir: Path | None) -> list[Score]:
    """Run every suite whose data is present."""
    scores: list[Score] = []
    steps: list[tuple[str, Callable[[Path], Score | None]]] = [
        ("parser_cases.json", parser_suite), ("escaping_cases.json", escaping_suite),
        ("ruleset_condition_corpus.json", corpus_suite),
    ]
    for name, fn in steps:
        if (conformance_dir / name).exists():
            s = fn(conformance_dir / name)
            if s:
                scores.append(s)
    load = conformance_dir / "rules_load_cases.json"
    if load.exists():
        data = json.loads(load.read_text())
        scores += [unit_suite(data), cli_suite(data, rules_dir), warning_suite(data)]
    if (conformance_dir / "eval_cases.json").exists():
        s = eval_suite(conformance_dir / "eval_cases.json")
        if s:
            scores.append(s)
    if rules_dir is not None and rules_dir.is_dir():
        scores.append(upstream_suite(rules_dir))
    return scores


def main(argv: Iterable[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args
    args = [a for a in args if a != "-v"]
    if not args:
        print("usage: python -m tools.conformance CONFORMANCE_DIR [RULES_DIR] [-v]",
              file=sys.stderr)
        return 2
    conf = Path(args[0])
    rules = Path(args[1]) if len(args) > 1 else None
    if not conf.is_dir():
        print(f"{conf}: not a directory", file=sys.stderr)
        return 2
    scores = run(conf, rules)
    for s in scores:
        for line in s.lines():
            print(line)
        if verbose:
            for f in s.failures:
                print(f"  failed: {f}")
    failed = any(s.passed != s.total for s in scores)
    return 1 if failed else 0


__all__ = ["Score", "expand_paths", "main", "run"]
