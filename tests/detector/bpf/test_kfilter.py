"""Kernel filters on the running kernel: what the plan drops never reaches userspace, what a
rule needs does, and a new plan takes over without a program reload."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.kfilter.atoms import IS_DIR, dnf_or, lit, over
from detector.kfilter.plan import KernelPlan, compile_syscall, finish_trie
from detector.rules.lang.parser import parse
from detector.sources.ebpf import EbpfSource
from tests.realparts import need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]


def _plan(condition: str) -> KernelPlan:
    plan = KernelPlan()
    compile_syscall(plan, "openat", dnf_or(lit(IS_DIR), over(parse(condition), "openat")),
                    mark_drops=True)  # fmt: skip
    compile_syscall(plan, "close", frozenset(), close_marks=True)
    plan.marking = True
    finish_trie(plan)
    return plan


@pytest.fixture(scope="module")
def source() -> Iterator[EbpfSource]:
    need_bpf()
    with EbpfSource(syscalls={"openat", "close"}, skip_self=False) as src:
        yield src


def _opens(src: EbpfSource, paths: list[str]) -> list[tuple[str, object]]:
    src.read(timeout=0.05)
    for p in paths:
        os.close(os.open(p, os.O_RDONLY))
    time.sleep(0.1)
    me = os.getpid()
    return [(e.type, e.args.get("name") if e.type == "openat" else e.args.get("fd"))
            for e in src.read(timeout=0.2) if e.ctx.get("pid") == me]  # fmt: skip


def test_dropped_opens_and_their_closes_never_arrive(source: EbpfSource) -> None:
    fds = source.program_fds()
    source.set_filters(_plan("evt.is_open_read = true and fd.name startswith /etc"))
    got = _opens(source, ["/usr/include/stdio.h", "/etc/hostname", "/etc/../etc/hostname", "/"])
    names = [n for t, n in got if t == "openat"]
    assert names == ["/etc/hostname", "/etc/../etc/hostname", "/"]  # "/" is a directory
    assert sum(t == "close" for t, _ in got) == 3
    assert source.filter_stats()["openat"][1] >= 1
    assert source.program_fds() == fds  # no program reload


def test_a_new_plan_and_none_take_over(source: EbpfSource) -> None:
    source.set_filters(_plan("fd.name = /usr/include/stdio.h"))
    got = _opens(source, ["/usr/include/stdio.h", "/etc/hostname"])
    assert [n for t, n in got if t == "openat"] == ["/usr/include/stdio.h"]
    source.set_filters(None)
    got = _opens(source, ["/usr/include/stdio.h", "/etc/hostname"])
    assert [n for t, n in got if t == "openat"] == ["/usr/include/stdio.h", "/etc/hostname"]


@pytest.mark.parametrize("on", [True, False])
def test_the_feed_follows_engine_ebpf_kernel_filters(on: bool, tmp_path: Path) -> None:
    need_bpf()
    from detector.bpf.kfmaps import NR_SYSCALLS, live_slot
    from detector.config.load import load_config
    from detector.feeds import SyscallFeed
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import load_rules_files
    from detector.sources.syscall_nrs import NUMBERS

    config = load_config(overrides=[f"engine.ebpf.kernel_filters={str(on).lower()}"])
    f = tmp_path / "r.yaml"
    f.write_text("- rule: r\n  desc: d\n  condition: evt.type = openat and fd.name startswith "
                 "/etc\n  output: o\n  priority: INFO\n")  # fmt: skip
    rules = RulesEngine(load_rules_files([f])).rules
    feed = SyscallFeed(config, frozenset({"openat"}), rules)
    try:
        bpf = feed.source._require_bpf()
        slot = live_slot(bpf)
        leaf = bpf[b"kf_sys"][ctypes.c_int(slot * NR_SYSCALLS + NUMBERS["openat"])]
        assert bool(leaf.mode) == on
        feed.set_rules(None)  # a reload widens first: every event
        slot = live_slot(bpf)
        assert not bpf[b"kf_sys"][ctypes.c_int(slot * NR_SYSCALLS + NUMBERS["openat"])].mode
    finally:
        feed.close()


def test_a_new_plan_forgets_the_marks_of_the_old(source: EbpfSource) -> None:
    source.set_filters(_plan("fd.name = /nothing"))
    fd = os.open("/usr/include/stdio.h", os.O_RDONLY)  # dropped: its fd is marked
    source.set_filters(None)
    os.close(fd)
    fd = os.open("/usr/include/stdio.h", os.O_RDONLY)  # kept (no plan): the same fd number
    source.set_filters(_plan("fd.name = /nothing"))
    source.read(timeout=0.05)
    os.close(fd)  # its open was kept: the close must come although the fd was marked once
    time.sleep(0.1)
    me = os.getpid()
    closes = [e for e in source.read(timeout=0.2) if e.ctx.get("pid") == me and e.type == "close"]
    assert fd in [e.args.get("fd") for e in closes]  # (BCC's own closes come too)
    source.set_filters(None)
