"""The eval conformance suite: ``eval_cases.json`` through both evaluators.

``eval`` cases evaluate a condition against the fixture's field values (fields absent from the
fixture are unavailable); ``compile`` / ``compile_error`` cases must (not) compile against the
field table, with the expected number of compiler warnings when given. A case passes only when
the compiled and the reference evaluator both give the expected result. Cases whose features
are newer than Falco 0.42 (libs 0.22) are counted apart, as the stretch.
Informational ``field_value_example`` cases are not counted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from detector.rules.eval.codegen import CompiledCondition
from detector.rules.eval.mapping import typed_mapping
from detector.rules.eval.reference import ReferenceEvaluator
from detector.rules.fields.registry import FIELDS, MappingProvider
from falcoctl_py.errors import FalcoctlPyError

# libs version of Falco 0.42: features introduced after it are the stretch.
BASELINE = (0, 22)

# The mock filterchecks of the libs tests (filter_compiler.ut.cpp, filterchecks/mock.cpp).
MOCK_TYPES = {
    "c.true": "CHARBUF", "c.false": "CHARBUF", "c.buffer": "BYTEBUF",
    "c.singlequote": "CHARBUF", "c.doublequote": "CHARBUF",
    "test.int64": "INT64", "test.charbuf": "CHARBUF", "test.bytebuf": "BYTEBUF",
    "test.list": "CHARBUF", "test.another_list": "CHARBUF", "test.more_than_256": "CHARBUF",
    "test.base64": "CHARBUF",
    "sample.is_open": "UINT64", "sample.proc_name": "CHARBUF", "sample.tick": "CHARBUF",
}
MOCK_LISTS = frozenset({"test.list", "test.another_list"})
MOCK_NO_TRANSFORMER = frozenset({"test.list"})

_GETCWD = {"evt.type": "getcwd", "syscall.type": "getcwd", "evt.source": "syscall",
           "evt.arg.res": "EPERM", "evt.arg[0]": "EPERM", "evt.arg[1]": "/test/dir",
           "evt.arg.path": "/test/dir", "proc.name": "init"}
# Fixtures transcribed by hand from the libs tests whose synthetic events the vectors do not
# carry, keyed by (test, line).
EXTRA_FIXTURES: dict[tuple[str, int], dict[str, Any]] = {
    **{("sinsp_with_test_input.filter_cache_corner_cases", n): {"sample.is_open": 0}
       for n in (850, 851)},
    **{("sinsp_with_test_input.filter_cache_corner_cases", n): dict(_GETCWD)
       for n in (860, 861, 869, 870, 878, 879, 888, 889, 897, 901)},
    ("sinsp_with_test_input.filter_cache_pointer_instability", 919): {},
    ("sinsp_with_test_input.filter_cache_unary_check_plugin_ptr_instability", 957):
        {"sample.proc_name": "init", "sample.tick": "false"},
    **{("sinsp_with_test_input.EVT_FILTER_data_buffer_str", n): {"evt.arg.data": "gigi"}
       for n in (222, 226)},
    **{("sinsp_with_test_input.PROC_FILTER_aname", n):
       {"proc.name": "good-exe", "proc.aname": ["bash", "init"]} for n in range(150, 170)},
    **{("sinsp_with_test_input.fd_fields_invalid_utf8_match", n):
       {"fd.name": "/p\udcff/q\udcff", "fd.directory": "/p\udcff", "fd.filename": "q\udcff",
        "fs.path.name": "/p\udcff/q\udcff", "evt.arg.name": "/p\udcff/q\udcff"}
       for n in range(30, 50)},
    **{("sinsp_with_test_input.fspath_fields_invalid_utf8_match", n):
       {"fs.path.source": "/s\udcff", "fs.path.target": "/t\udcff"} for n in range(70, 90)},
    **{("sinsp_with_test_input.evt_abspath_invalid_utf8_match", n): {"evt.abspath": "/tmp/a\udcff"}
       for n in range(90, 100)},
    **{("sinsp_with_test_input.proc_fields_invalid_utf8_match", n):
       {"proc.name": "bad\udcff", "proc.exe": "/bad\udcff"} for n in range(50, 70)},
    **{("sinsp_with_test_input.proc_cwd_invalid_utf8_match", n): {"proc.cwd": "/tmp/c\udcff/"}
       for n in range(100, 120)},
    **{("sinsp_with_test_input.EVT_FILTER_rawarg_madness", n):
       {"evt.rawarg.size": -21, "evt.rawarg.flags": 3, "evt.rawarg.uid": 0,
        "evt.rawarg.pgid": 0, "evt.rawarg.gid": 0} for n in range(30, 100)},
}
EXTRA_TYPES = {"evt.rawarg.size": "INT64"}


def is_stretch(case: dict[str, Any]) -> bool:
    """Whether a case needs a feature newer than Falco 0.42 (libs 0.22)."""
    for label in case.get("features_introduced_in") or ():
        m = re.search(r"(\d+)\.(\d+)", label)
        if "HEAD" in label or (m and (int(m.group(1)), int(m.group(2))) > BASELINE):
            return True
    return False


def _provider(fixture: dict[str, Any] | None) -> MappingProvider:
    types = dict(MOCK_TYPES)
    types.update(EXTRA_TYPES)
    lists = set(MOCK_LISTS)
    if fixture:
        for name in fixture.get("fields", {}):
            base = name.split("[", 1)[0]
            if base not in FIELDS and name not in types and base not in types \
                    and not base.startswith(("evt.arg.", "evt.rawarg.")):
                types[name] = "CHARBUF"
        types.update(fixture.get("types") or {})
        lists.update(fixture.get("lists") or ())
    no_tr = frozenset(MOCK_NO_TRANSFORMER | set((fixture or {}).get("no_transformer") or ()))
    return MappingProvider(types=types, lists=frozenset(lists), no_transformer=no_tr)


def run_case(case: dict[str, Any]) -> bool | None:
    """Whether one case passes (None: not a counted case)."""
    from detector.rules.lang.parser import parse

    kind = case["kind"]
    if kind not in ("eval", "compile", "compile_error"):
        return None
    fixture = case.get("fixture")
    fields: dict[str, Any] | None = None
    if kind == "eval":
        key = (case["source"].get("test", ""), int(case["source"].get("line", 0)))
        if fixture and fixture.get("fields"):
            fields = fixture["fields"]
        elif key in EXTRA_FIXTURES:
            fields = EXTRA_FIXTURES[key]
        elif fixture is not None or "getopt" in case["condition"]:
            fields = {}
        else:
            return False
    try:
        node = parse(case["condition"])
        cc = CompiledCondition(node, _provider(fixture))
        ref = ReferenceEvaluator(node, cc.provider)
    except (FalcoctlPyError, RecursionError):
        return bool(kind == "compile_error")
    if kind == "compile_error":
        return False
    if kind == "compile":
        want = case.get("expected_compile_warnings")
        return bool(want is None or len(cc.warnings) == int(want))
    try:
        mapping = typed_mapping(cc, fields or {})
        got, got_ref = cc(mapping), ref(mapping)
    except FalcoctlPyError:
        return False
    return got == got_ref == bool(case["expected"])


def run_eval_suite(path: Path) -> tuple[int, int, int, int]:
    """(passed, total, stretch_passed, stretch_total) over an ``eval_cases.json`` file."""
    data = json.loads(Path(path).read_text())
    cases = data["cases"] if isinstance(data, dict) else data
    passed = total = s_passed = s_total = 0
    for case in cases:
        ok = run_case(case)
        if ok is None:
            continue
        if is_stretch(case):
            s_total += 1
            s_passed += ok
        else:
            total += 1
            passed += ok
    return passed, total, s_passed, s_total


def failures(path: Path) -> list[dict[str, Any]]:
    """The counted cases that fail (for debugging the suite)."""
    data = json.loads(Path(path).read_text())
    return [c for c in data["cases"] if run_case(c) is False]
