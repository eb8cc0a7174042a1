"""What the kernel filter maps get from a plan (no kernel needed), and that the constants on
both sides agree with events.h."""

from __future__ import annotations

import re
from importlib import resources

from detector.bpf import kfmaps
from detector.kfilter import plan as kplan
from detector.kfilter.atoms import IS_DIR, PATH_MAX_EVAL, dnf_or, lit, over
from detector.kfilter.plan import KernelPlan, compile_syscall, finish_trie
from detector.rules.lang.parser import parse
from detector.sources import layout


def _defines() -> dict[str, int]:
    text = resources.files("detector.bpf").joinpath("events.h").read_text()
    out = {}
    for name, value in re.findall(r"^#define (KF_\w+) \(?(0x[0-9a-f]+|0\d+|\d+)", text, re.M):
        out[name] = int(value, 8) if value.startswith("0") and value != "0" and not \
            value.startswith("0x") else int(value, 0)  # fmt: skip
    return out


def test_the_constants_agree_with_events_h() -> None:
    d = _defines()
    assert (d["KF_CLAUSES"], d["KF_FLAGS"]) == (kfmaps.KF_CLAUSES, kfmaps.KF_FLAGS)
    assert (d["KF_CLAUSES"], d["KF_FLAGS"]) == (kplan.MAX_CLAUSES, kplan.MAX_FLAG_ATOMS)
    for name in ("KF_ON", "KF_PATH", "KF_DIR", "KF_MARK_DROPS", "KF_CLOSE_MARKS",
                 "KF_UNMARK_RET", "KF_UNMARK_UBUF", "KF_SRC_UBUF", "KF_SRC_CREAT", "KF_SUFFIX",
                 "KF_RTRIE", "KF_SOCK_HIST", "KF_DIRPATH", "KF_DIRFD"):
        assert d[name] == getattr(kfmaps, name), name
    text = resources.files("detector.bpf").joinpath("events.h").read_text()
    assert "#define F_DUPFD_ 0\n" in text and "#define F_DUPFD_CLOEXEC_ 1030\n" in text
    assert frozenset({0, 1030}) == kplan.DUP_CMDS
    assert "#define K_DIR 8 " in text and layout.K_DIR == 8
    for name in ("HIST_SEEN", "HIST_CLIENT", "HIST_SERVER", "HIST_CONNECTED", "HIST_CLOEXEC",
                 "HIST_BARE", "HIST_HERE"):
        assert f"#define {name} {getattr(layout, name)} " in text, name  # the one place
    assert d["KF_CREAT_FLAGS"] == kplan.CREAT_FLAGS
    assert d["KF_PATH_MAX"] == PATH_MAX_EVAL
    assert kplan.BIT_DIR == 1 << 9 and kplan.PATH_BIT0 + kplan.MAX_PATH_ATOMS <= 62
    text = resources.files("detector.bpf").joinpath("events.h").read_text()
    assert "#define KF_BIT_ZERO (1ull << 62)" in text and kplan.BIT_ZERO == 1 << 62


def test_a_plan_becomes_modes_clauses_and_unmarking() -> None:
    plan = KernelPlan()
    dnf = dnf_or(lit(IS_DIR), over(parse("evt.is_open_write = true and fd.name startswith /etc"),
                                   "openat"))  # fmt: skip
    compile_syscall(plan, "openat", dnf, mark_drops=True)
    compile_syscall(plan, "close", frozenset(), close_marks=True)
    plan.marking = True
    finish_trie(plan)
    got = kfmaps.entries(plan)
    o = got["openat"]
    assert o["mode"] & kfmaps.KF_ON and o["mode"] & kfmaps.KF_PATH and o["mode"] & kfmaps.KF_DIR
    assert o["mode"] & kfmaps.KF_MARK_DROPS and o["mode"] & kfmaps.KF_UNMARK_RET
    assert o["flags_src"] == 3 and o["path_arg"] == 2  # flags in arg 2, the path in arg 1
    assert got["close"]["mode"] == kfmaps.KF_ON | kfmaps.KF_CLOSE_MARKS
    assert got["pipe2"]["mode"] == kfmaps.KF_UNMARK_UBUF  # kept whole, unmarks its two fds
    assert got["socket"]["mode"] == kfmaps.KF_UNMARK_RET
    assert "execve" not in got and kfmaps.entries(None) == {}
    assert got["connect"]["mode"] & kfmaps.KF_SOCK_HIST  # kept whole: deletes its history
    assert got["connect"]["hist"] == layout.HIST_CLIENT
    assert plan.trie == {"/etc": 1 << kplan.PATH_BIT0}


def test_fcntl_tests_its_command_and_suffixes_set_their_mode() -> None:
    from detector.kfilter.build import build

    got = kfmaps.entries(build([], {"fcntl"}).plan)["fcntl"]
    assert got["flags_src"] == 2 and got["path_arg"] == 0  # cmd is argument 1; no path
    assert sorted(got["flags"]) == [(0xFFFFFFFF, 0), (0xFFFFFFFF, 1030)]  # F_DUPFD(_CLOEXEC)
    assert got["mode"] == kfmaps.KF_ON  # no open marks here: nothing to unmark
    plan = KernelPlan()
    compile_syscall(plan, "openat", over(parse("fd.filename = syslog"), "openat"))
    finish_trie(plan)
    assert plan.rtrie == {"/syslog": 1 << kplan.PATH_BIT0} and not plan.trie
    assert kfmaps.entries(plan)["openat"]["mode"] & kfmaps.KF_SUFFIX


def test_the_stable_rules_record_the_history_of_dropped_tcp_sockets() -> None:
    """socket, connect and accept of the stable rules' plan record their socket's history
    when dropped, each with its role (kfilter.h kf_hist_record)."""
    from pathlib import Path

    from detector.kfilter.build import build
    from detector.rules.load.loader import load_rules_files

    rules = load_rules_files([Path("/work/shared/falco-rules/falco_rules.yaml")]).rules
    got = kfmaps.entries(build(rules, {"socket", "connect", "accept4", "dup2"}).plan)
    roles = {n: (got[n]["mode"] & (kfmaps.KF_SOCK_HIST | kfmaps.KF_ON), got[n]["hist"])
             for n in ("socket", "connect", "accept4")}  # fmt: skip
    on = kfmaps.KF_SOCK_HIST | kfmaps.KF_ON
    assert roles == {"socket": (on, layout.HIST_BARE), "connect": (on, layout.HIST_CLIENT),
                     "accept4": (on, layout.HIST_SERVER)}  # fmt: skip
