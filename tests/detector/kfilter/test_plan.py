"""Kernel filter plans: for random conditions over the atoms the filter understands, every
open the condition matches is kept by the kernel's decision (the maps' semantics in Python)."""

from __future__ import annotations

import itertools
import posixpath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.kfilter.atoms import FALSE, TRUE, dnf_or, evaluable_path, over
from detector.kfilter.plan import Facts, KernelPlan, Marks, compile_syscall, decide, finish_trie
from detector.rules.eval.mapping import compile_for_mapping, typed_mapping
from detector.rules.fields.render import open_flags_string
from detector.rules.lang.parser import parse
from detector.state.exefacts import resolve_path
from tests.detector.kfilter.kf_parts import conditions

PATHS = ("/etc/shadow", "/etc/pam.d/x", "/etc", "/tmp/x", "/usr/include/a..b", "/etc/../etc/shadow",
         "rel/x", "/etc/", "/tmp//x", "/", "/x", "/etc/xshadow", "/etc/x/shadow/.")  # fmt: skip
FLAGS = (0, 1, 2, 0o1101, 0o200000, 0o2000000)
RESULTS = (-2, 0, 5)
ATOMS = st.sampled_from([
    "fd.name startswith /etc", "fd.name = /etc/shadow", "fd.name in (/tmp/x, /etc/shadow)",
    "fd.name != /tmp/x", "fd.nameraw contains ../", "fd.directory = /etc/pam.d",
    "fd.directory in (/etc)", "fd.name pmatch (/etc)", "evt.is_open_read = true",
    "evt.is_open_write = true", "evt.is_open_write = false", "evt.arg.flags contains O_TRUNC",
    "evt.arg.flags contains O_CLOEXEC", "fd.typechar = f", "fd.typechar = d", "fd.num >= 0",
    "evt.rawres < 0", "evt.rawres in (0, 1)", "proc.name = bash", "evt.type = openat",
    "evt.type = connect", "fd.name endswith shadow", "fd.filename = x",
    "fd.filename in (shadow, x, a/b)", "fd.filename != shadow", "fd.nameraw endswith /x",
    "fd.name endswith 'c/x'", "fd.filename = ''", "fd.name endswith ''",
])  # fmt: skip


def _values(path: str, flags: int, ret: int) -> dict[str, Any]:
    name = resolve_path("/cwd", path)
    return {"fd.name": name, "fd.nameraw": path, "fd.directory": posixpath.dirname(name),
            "fd.filename": posixpath.basename(name),
            "evt.is_open_read": flags & 3 != 1, "evt.is_open_write": flags & 3 != 0,
            "evt.arg.flags": open_flags_string(flags), "evt.rawres": ret,
            "fd.num": ret if ret >= 0 else -1, "fd.typechar": "d" if flags & 0o200000 else "f",
            "proc.name": "bash", "evt.type": "openat"}  # fmt: skip


def _plan(conditions: list[str]) -> KernelPlan:
    plan = KernelPlan()
    dnf = FALSE
    for c in conditions:
        dnf = dnf_or(dnf, over(parse(c), "openat"))
    compile_syscall(plan, "openat", dnf, mark_drops=True)
    finish_trie(plan)
    return plan


@settings(max_examples=300, deadline=None)
@given(st.lists(conditions(ATOMS), min_size=1, max_size=3))
def test_what_a_rule_matches_the_kernel_keeps(conditions: list[str]) -> None:
    plan = _plan(conditions)
    compiled = [compile_for_mapping(c) for c in conditions]
    for path, flags, ret in itertools.product(PATHS, FLAGS, RESULTS):
        values = _values(path, flags, ret)
        if any(cc(typed_mapping(cc, values)) for cc in compiled):
            assert decide(plan, Facts("openat", ret, flags, path)), (conditions, values)


def test_the_bench_opens_are_dropped_and_sensitive_ones_kept() -> None:
    plan = _plan(["evt.is_open_read = true and fd.typechar = f and fd.num >= 0 and "
                  "fd.name startswith /etc and fd.name in (/etc/shadow)"])  # fmt: skip
    assert not decide(plan, Facts("openat", 3, 0, "/usr/include/stdio.h"))
    assert decide(plan, Facts("openat", 3, 0, "/etc/shadow"))
    assert decide(plan, Facts("openat", 3, 0, "/etc/../etc/shadow"))  # not normalised: kept
    assert decide(plan, Facts("openat", 3, 0, "shadow"))  # relative: kept
    assert not decide(plan, Facts("openat", -2, 0, "/etc/shadow"))


def test_a_condition_the_kernel_cannot_tell_apart_keeps_everything() -> None:
    plan = _plan(["fd.name glob '*.h'"])
    assert plan.syscalls["openat"].keep_all
    assert over(parse("evt.type = connect"), "openat") == FALSE
    assert over(parse("proc.name = bash"), "openat") != TRUE


def test_a_dropped_open_takes_its_close_along() -> None:
    plan = _plan(["fd.name = /etc/shadow"])
    compile_syscall(plan, "close", FALSE, close_marks=True)
    plan.marking = True
    marks = Marks()
    assert not marks.keep(plan, Facts("openat", 7, 0, "/usr/x"), pid=10)
    assert not marks.keep(plan, Facts("close", 0, fd_arg=7), pid=10)
    assert marks.keep(plan, Facts("close", 0, fd_arg=7), pid=10)  # a second close: not marked
    assert marks.keep(plan, Facts("openat", 8, 0, "/etc/shadow"), pid=10)
    assert marks.keep(plan, Facts("close", 0, fd_arg=8), pid=10)


def test_evaluable_paths_are_their_own_fd_name() -> None:
    for path in (*PATHS, "/", "/a/.", "/a/..", "/a.", "/..x/y"):
        if evaluable_path(path):
            assert resolve_path("/cwd", path) == path


def test_too_many_path_strings_keep_every_open() -> None:
    names = ", ".join(f"/etc/f{i}" for i in range(2100))
    plan = _plan([f"fd.name in ({names})"])
    assert plan.syscalls["openat"].keep_all and "path strings" in plan.syscalls["openat"].reason


def test_a_path_longer_than_the_kernel_reads_matches_nothing_evaluable() -> None:
    long = "/" + "a" * 300
    plan = _plan([f"not fd.name = {long} and fd.name startswith /etc"])
    assert not plan.syscalls["openat"].keep_all and long + "\0" not in plan.trie
    assert decide(plan, Facts("openat", 3, 0, "/etc/x"))
    assert decide(plan, Facts("openat", 3, 0, long))  # too long to evaluate: kept


def test_a_rule_reading_the_fd_table_keeps_every_open() -> None:
    from types import SimpleNamespace

    from detector.kfilter.build import build

    def rule(cond: str) -> object:
        return SimpleNamespace(name="r", enabled=True, source="syscall", tree=parse(cond),
                               evttypes=("execve",))  # fmt: skip

    for cond in ("evt.type = execve and proc.stdout.type = file",
                 "evt.type = execve and proc.fdopencount > 3",
                 "evt.type = execve and fd.types[1] = file"):  # fmt: skip
        b = build([rule(cond)], {"openat", "close", "execve"}, chosen=True)
        assert b.plan.syscalls["openat"].keep_all, cond
        assert b.fd_readers == ["r"]
    b = build([rule("evt.type = execve and proc.name = x")], {"openat", "execve"}, chosen=True)
    assert not b.plan.syscalls["openat"].keep_all and b.fd_readers == []
