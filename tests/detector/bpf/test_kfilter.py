"""Kernel filters on the running kernel: what the plan drops never reaches userspace, what a
rule needs does, and a new plan takes over without a program reload."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

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
