"""Kernel filters of the upstream rules files: every sampled event a rule matches (evaluated
by the rules engine's compiler) is kept by the kernel's decision, and the plan drops what the
bench workloads do most."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.kfilter.atoms import OPEN_TYPES
from detector.kfilter.build import build
from detector.kfilter.plan import Facts, KernelPlan, decide
from detector.rules.eval.mapping import FieldValueError, compile_for_mapping, typed_mapping
from detector.rules.fields.render import open_flags_string
from detector.rules.lang.ast import BinaryCheck, ListNode, ValueNode, walk
from detector.state.exefacts import resolve_path
from tests.realparts import need

RULES_DIR = Path("/work/shared/falco-rules")
FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
RESULTS = (-13, -2, 0, 3)
FLAGS = (0, 1, 2, 0o1101, 0o2101, 0o200000, 0o2000000)
PATH_FIELDS = ("fd.name", "fd.directory", "evt.arg.name", "evt.arg.path", "fd.nameraw")


def _errno(res: int) -> str:
    return "SUCCESS" if res >= 0 else {-13: "EACCES", -2: "ENOENT"}[res]


def _constants(rule: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in walk(rule.tree):
        if isinstance(node, BinaryCheck) and node.left.__class__.__name__ == "FieldRef":
            name = node.left.name if node.left.arg is None else f"{node.left.name}.{node.left.arg}"
            if isinstance(node.right, ValueNode):
                out.setdefault(name, []).append(node.right.value)
            elif isinstance(node.right, ListNode):
                out.setdefault(name, []).extend(node.right.items[:6])
    return out


@pytest.fixture(scope="module")
def upstream() -> tuple[list[Any], dict[str, KernelPlan]]:
    need(all((RULES_DIR / f).exists() for f in FILES), f"the upstream rules in {RULES_DIR}")
    from detector.rules.load.loader import load_rules_files
    from detector.sources.syscalls import SUPPORTED

    stable = load_rules_files([str(RULES_DIR / FILES[0])])
    rs = load_rules_files([str(RULES_DIR / f) for f in FILES])
    plans = {"stable": build(stable.rules, SUPPORTED).plan, "all": build(rs.rules, SUPPORTED).plan}
    rules = [r for r in rs.rules if r.enabled and r.source == "syscall" and r.tree is not None]
    return rules, plans


def _path(data: st.DataObject, consts: dict[str, list[Any]]) -> str:
    cands = [c for f in PATH_FIELDS for c in consts.get(f, []) if isinstance(c, str)]
    base = data.draw(st.sampled_from([*cands, "/usr/include/stdio.h", "/tmp/x"]))
    tail = data.draw(st.sampled_from(["", "/x", "x", "/../y", "/"]))
    return base + tail


def _open_values(path: str, flags: int, res: int) -> dict[str, Any]:
    name = resolve_path("/", path)
    return {"fd.name": name, "fd.nameraw": path, "evt.arg.name": path, "evt.arg.path": path,
            "fd.directory": posixpath.dirname(name), "fd.filename": posixpath.basename(name),
            "evt.is_open_read": flags & 3 != 1, "evt.is_open_write": flags & 3 != 0,
            "evt.arg.flags": open_flags_string(flags), "fd.num": res if res >= 0 else -1,
            "fd.typechar": "d" if flags & 0o200000 else "f",
            "fd.type": "directory" if flags & 0o200000 else "file"}  # fmt: skip


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_upstream_rules_matches_are_kept(upstream: tuple[list[Any], dict[str, KernelPlan]],
                                         data: st.DataObject) -> None:  # fmt: skip
    rules, plans = upstream
    rule = rules[data.draw(st.integers(0, len(rules) - 1))]
    consts = _constants(rule)
    evttype = data.draw(st.sampled_from(sorted(rule.evttypes or {"openat"})))
    res, flags = data.draw(st.sampled_from(RESULTS)), data.draw(st.sampled_from(FLAGS))
    path = _path(data, consts)
    values: dict[str, Any] = {"evt.type": evttype, "evt.rawres": res, "evt.res": _errno(res),
                              "evt.failed": res < 0}  # fmt: skip
    if evttype in OPEN_TYPES:
        values.update(_open_values(path, flags, res))
    for name, vals in consts.items():
        if vals and name not in values and data.draw(st.booleans()):
            values[name] = data.draw(st.sampled_from(vals))
    cc = compile_for_mapping(rule.tree)
    try:
        mapping = typed_mapping(cc, values)
    except FieldValueError:
        return  # a constant of another type than the field's
    if cc(mapping):
        assert decide(plans["all"], Facts(evttype, res, flags, path)), (rule.name, values)


def test_the_stable_rules_drop_reads_of_ordinary_files(
        upstream: tuple[list[Any], dict[str, KernelPlan]]) -> None:  # fmt: skip
    plan = upstream[1]["stable"]
    assert not decide(plan, Facts("openat", 3, 0, "/usr/include/stdio.h"))
    assert decide(plan, Facts("openat", 3, 0, "/etc/shadow"))
    # writes: Clear Log Activities (a log's name or directory, truncating), release_agent
    assert not decide(plan, Facts("openat", 3, 0o1101, "/tmp/cc.o"))
    assert decide(plan, Facts("openat", 3, 0o1101, "/tmp/syslog"))
    assert decide(plan, Facts("openat", 3, 0o1101, "/var/log/x"))
    assert not decide(plan, Facts("openat", 3, 0o101, "/tmp/syslog"))  # no O_TRUNC
    assert decide(plan, Facts("openat", 3, 0o101, "/sys/fs/cgroup/x/release_agent"))
    assert not decide(plan, Facts("openat", 3, 0o101, "/sys/fs/cgroup/x/release_agent.bak"))
    assert plan.syscalls["close"].close_marks
    assert plan.syscalls["execve"].keep_all if "execve" in plan.syscalls else True
