"""Kernel filters on the running kernel: what the plan drops never reaches userspace, what a
rule needs does, and a new plan takes over without a program reload."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.events import Event
from detector.kfilter.atoms import IS_DIR, dnf_or, lit, over
from detector.kfilter.plan import KernelPlan, compile_syscall, finish_trie
from detector.rules.lang.parser import parse
from detector.sources.ebpf import EbpfSource
from tests.eventually import eventually
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


SENTINEL, DRAIN = "/proc/self/fdinfo", "/proc/self/fd"  # directories: every plan keeps them
STDIO = "/usr/include/stdio.h"  # a file the plans here drop


def _until_sentinel(src: EbpfSource, marker: str = SENTINEL) -> list[Event]:
    """This process's events before it opens ``marker`` (the open is repeated until one
    arrives: another process flooding the ring buffer can lose one), the markers left out."""
    me, got = os.getpid(), list[Event]()

    def probe() -> bool:
        os.close(os.open(marker, os.O_RDONLY))
        while batch := src.read(timeout=0.05):  # the whole backlog (BCC's own opens too)
            got.extend(e for e in batch if e.ctx and e.ctx.get("pid") == me)
        return any(e.type == "openat" and e.args.get("name") == marker for e in got)

    eventually(probe, timeout=60, what=f"the open of {marker}")  # other tests may flood
    out, markers = [], set()
    for e in got[: next(i for i, e in enumerate(got) if e.args.get("name") == marker)]:
        if e.args.get("name") in (SENTINEL, DRAIN):
            markers.add(e.res)
        elif not (e.type == "close" and e.args.get("fd") in markers):
            out.append(e)
    return out


def _drain(src: EbpfSource) -> None:
    """Read until the ring buffer holds nothing of this process's from before."""
    _until_sentinel(src, DRAIN)


def _opens(src: EbpfSource, paths: list[str]) -> list[tuple[str, object]]:
    _drain(src)
    for p in paths:
        os.close(os.open(p, os.O_RDONLY))
    return [(e.type, e.args.get("name") if e.type == "openat" else e.args.get("fd"))
            for e in _until_sentinel(src)]  # fmt: skip


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
    _drain(source)
    os.close(fd)  # its open was kept: the close must come although the fd was marked once
    closes = [e for e in _until_sentinel(source) if e.type == "close"]
    assert fd in [e.args.get("fd") for e in closes]  # (BCC's own closes come too)
    source.set_filters(None)


def _closes(src: EbpfSource) -> list[object]:
    return [e.args.get("fd") for e in _until_sentinel(src) if e.type == "close"]


def test_a_mark_is_the_process_s_whichever_thread_closes(source: EbpfSource) -> None:
    source.set_filters(_plan("fd.name startswith /etc"))
    _drain(source)
    box: list[int] = []
    opener = threading.Thread(target=lambda: box.append(os.open(STDIO, os.O_RDONLY)))
    opener.start()
    opener.join()
    mine = os.open(STDIO, os.O_RDONLY)
    kept = os.open("/etc/hostname", os.O_RDONLY)
    os.close(box[0])  # dropped open on another thread: this close goes too
    for fd in (mine, kept):
        closer = threading.Thread(target=os.close, args=(fd,))
        closer.start()
        closer.join()
    got = _closes(source)
    assert kept in got and box[0] not in got and mine not in got, (got, box, mine, kept)
    source.set_filters(None)


def test_an_exec_voids_the_marks_of_the_process(source: EbpfSource) -> None:
    # The child marks two fds (dropped opens), closes one (dropped), keeps the other across an
    # exec (not CLOEXEC) and closes it from the new image: that close comes, as the state may
    # have learnt the fd from /proc by then. Its fds start past 60 (dups, not captured here),
    # clear of the numbers its start-up used.
    source.set_filters(_plan("fd.name startswith /etc"))
    _drain(source)
    script = textwrap.dedent(f"""
        import os, sys
        fill = [os.dup(0) for _ in range(60)]
        fd = os.open({STDIO!r}, os.O_RDONLY)
        other = os.open({STDIO!r}, os.O_RDONLY)
        os.close(other)
        os.set_inheritable(fd, True)
        print(fd, other, flush=True)
        code = "import os; os.close(%d); os.close(os.open(%r, os.O_RDONLY))" % (fd, {SENTINEL!r})
        os.execv(sys.executable, [sys.executable, "-c", code])
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True)  # fmt: skip
    fd, other = map(int, child.stdout.split())
    me, got = os.getpid(), list[Event]()

    def done() -> bool:
        got.extend(e for e in source.read(timeout=0.05) if e.ctx and e.ctx.get("pid") != me)
        return any(e.args.get("name") == SENTINEL for e in got if e.type == "openat")

    eventually(done, timeout=60, what="the child's open of the sentinel")
    pid = next((e.ctx or {})["pid"] for e in got if e.args.get("name") == SENTINEL)
    closes = [e.args.get("fd") for e in got if e.type == "close" and (e.ctx or {})["pid"] == pid]
    assert fd in closes and other not in closes, (closes, fd, other)
    source.set_filters(None)


def test_fds_past_the_bitmap_are_marked_too(source: EbpfSource) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    filler: list[int] = []
    try:
        filler.append(os.open(os.devnull, os.O_RDONLY))
        while filler[-1] < 1100:  # dups (not captured here) take every fd below 1100
            filler.append(os.dup(filler[0]))
        source.set_filters(_plan("fd.name startswith /etc"))
        _drain(source)
        high = os.open(STDIO, os.O_RDONLY)
        kept = os.open("/etc/hostname", os.O_RDONLY)
        assert high >= 1024 and kept >= 1024
        os.close(high)
        os.close(kept)
        got = _closes(source)
        assert kept in got and high not in got, got
    finally:
        source.set_filters(None)
        for f in filler:
            os.close(f)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_kernel_without_task_storage_marks_every_fd_in_the_hash(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # This kernel has task storage: a BPF class that refuses programs using it stands in for
    # one without (before 5.11). The source loads without it and still drops marked closes.
    need_bpf()
    import bcc

    class NoTaskStorage(bcc.BPF):  # type: ignore[misc]
        def __init__(self, *args: object, cflags: list[str], **kwargs: object) -> None:
            if "-DKF_NO_TASK_STORAGE" not in cflags:
                raise Exception("task storage: Invalid argument")
            super().__init__(*args, cflags=cflags, **kwargs)

    monkeypatch.setattr(bcc, "BPF", NoTaskStorage)
    with EbpfSource(syscalls={"openat", "close"}, skip_self=False) as src:
        assert not src.task_storage and src.hook_used == "syscall_tp"
        src.set_filters(_plan("fd.name startswith /etc"))
        _drain(src)
        dropped = os.open(STDIO, os.O_RDONLY)
        kept = os.open("/etc/hostname", os.O_RDONLY)
        os.close(dropped)
        os.close(kept)
        got = _closes(src)
        assert kept in got and dropped not in got, got
