"""Kernel filter atoms on the running kernel: fcntl's command (only the commands that make an
fd reach userspace when no rule reads fcntl) and path suffixes (``endswith``,
``fd.filename``), read from the reversed path."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.events import Event
from detector.kfilter.atoms import IS_DIR, dnf_or, lit, over
from detector.kfilter.build import build
from detector.kfilter.plan import KernelPlan, compile_syscall, finish_trie
from detector.rules.lang.parser import parse
from detector.sources.ebpf import EbpfSource
from tests.eventually import eventually
from tests.realparts import need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
DRAIN = "/proc/self/fdinfo/."  # not normalised: no plan can judge it, every plan keeps it


@pytest.fixture(scope="module")
def source() -> Iterator[EbpfSource]:
    need_bpf()
    with EbpfSource(syscalls={"openat", "close", "fcntl", "pipe2"}, skip_self=False) as src:
        yield src


def _mine_until(src: EbpfSource, done: str) -> list[Event]:
    """This process's events up to its open of ``done`` (kept: a directory the plan keeps, or
    a path no plan can judge), which is repeated until one arrives: another process flooding
    the ring buffer can lose one."""
    me, got = os.getpid(), list[Event]()

    def probe() -> bool:
        while batch := src.read(timeout=0.05):  # the whole backlog (BCC's own opens too)
            got.extend(e for e in batch if e.ctx and e.ctx.get("pid") == me)
        if any(e.type == "openat" and e.args.get("name") == done for e in got):
            return True
        os.close(os.open(done, os.O_RDONLY))
        return False

    eventually(probe, timeout=60, what=f"the open of {done}")  # other tests may flood
    return got[: 1 + next(i for i, e in enumerate(got) if e.args.get("name") == done)]


def _drain(src: EbpfSource) -> None:
    """Read until the ring buffer holds nothing of ours from before."""
    _mine_until(src, DRAIN)


def _suffix_plan(condition: str) -> KernelPlan:
    plan = KernelPlan()
    compile_syscall(plan, "openat", dnf_or(lit(IS_DIR), over(parse(condition), "openat")),
                    mark_drops=True)  # fmt: skip
    finish_trie(plan)
    return plan


def test_only_the_fcntl_commands_that_make_fds_arrive(source: EbpfSource,
                                                      tmp_path: Path) -> None:  # fmt: skip
    plan = build([], {"fcntl"}).plan
    assert not plan.syscalls["fcntl"].keep_all
    source.set_filters(plan)
    _drain(source)
    fd = os.open("/usr/include/stdio.h", os.O_RDONLY)
    fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    dup = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)
    dup2 = fcntl.fcntl(fd, fcntl.F_DUPFD, 0)
    for f in (fd, dup, dup2):
        os.close(f)
    got = _mine_until(source, str(tmp_path))
    cmds = [e.args.get("cmd") for e in got if e.type == "fcntl"]
    assert cmds == [fcntl.F_DUPFD_CLOEXEC, fcntl.F_DUPFD]
    assert [e.res for e in got if e.type == "fcntl"] == [dup, dup2]
    source.set_filters(None)


def test_suffix_and_file_name_atoms_read_the_reversed_path(source: EbpfSource,
                                                           tmp_path: Path) -> None:  # fmt: skip
    source.set_filters(_suffix_plan(
        "fd.name endswith release_agent or fd.filename in (syslog, auth.log)"))
    names = ["release_agent", "release_agent.bak", "syslog", "xsyslog", "auth.log", "other"]
    for n in names:
        (tmp_path / n).write_text("x")
    _drain(source)
    for n in names:
        os.close(os.open(tmp_path / n, os.O_RDONLY))
    os.close(os.open(f"{tmp_path}/../{tmp_path.name}/other", os.O_RDONLY))  # not normalised
    got = _mine_until(source, str(tmp_path))
    opened = [e.args.get("name") for e in got
              if e.type == "openat" and str(e.args.get("name")).startswith(str(tmp_path))]
    assert opened == [str(tmp_path / n) for n in ("release_agent", "syslog", "auth.log")] + [
        f"{tmp_path}/../{tmp_path.name}/other", str(tmp_path)]
    assert source.filter_stats()["openat"][1] >= 3
    source.set_filters(None)


def test_a_long_path_ends_in_the_right_place(source: EbpfSource, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ("f" * 60)  # about 250 bytes with the file
    deep.mkdir(parents=True)
    room = 253 - len(str(deep)) - 1
    target = deep / ("x" * (room - len("syslog")) + "syslog")
    plain = deep / ("y" * (room - len("syslog")) + "syslog")
    target.write_text("x")
    plain.write_text("x")
    source.set_filters(_suffix_plan(f"fd.name endswith {target.name}"))
    _drain(source)
    os.close(os.open(plain, os.O_RDONLY))
    os.close(os.open(target, os.O_RDONLY))
    got = _mine_until(source, str(tmp_path))
    assert len(str(target)) == 253
    assert [e.args.get("name") for e in got if e.type == "openat" and str(
        e.args.get("name")).startswith(str(tmp_path))] == [str(target), str(tmp_path)]
    source.set_filters(None)


@pytest.mark.parametrize("length", [31, 32, 33, 34, 64, 65, 66, 128, 129, 130, 200, 253])
def test_each_normalisation_pass_judges_paths_up_to_its_length(source: EbpfSource,
                                                               length: int) -> None:  # fmt: skip
    # kf_normal runs a pass of 32, 64, 128 or 254 steps by the path's length: at each edge a
    # path must still be read to its end (its suffix decides) and checked to its end (a "/./"
    # in its last bytes keeps it).
    base = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    try:
        pad = length - len(str(base)) - 1 - len("syslog")
        match, plain = base / ("m" * pad + "syslog"), base / ("p" * pad + "sysloh")
        inner = base / ("o" * (pad - 3))
        inner.mkdir()
        odd = f"{inner}/./sysloh"  # not normalised in its last bytes: kept
        for f in (match, plain, inner / "sysloh"):
            f.write_text("x")
        assert len(str(match)) == len(str(plain)) == len(odd) == length
        source.set_filters(_suffix_plan("fd.name endswith syslog"))
        _drain(source)
        for name in (plain, match, odd):
            os.close(os.open(name, os.O_RDONLY))
        got = _mine_until(source, str(base))
        assert [e.args.get("name") for e in got if e.type == "openat" and str(
            e.args.get("name")).startswith(str(base))] == [str(match), odd, str(base)]
    finally:
        source.set_filters(None)
        shutil.rmtree(base)


def test_a_dropped_pipe_takes_the_closes_of_its_fds_along(source: EbpfSource,
                                                          tmp_path: Path) -> None:  # fmt: skip
    plan = build([], {"openat", "close", "pipe2"}).plan
    assert not plan.syscalls["pipe2"].keep_all and plan.syscalls["pipe2"].mark_drops
    source.set_filters(plan)
    _drain(source)
    (tmp_path / "d").mkdir()
    r, w = os.pipe()  # pipe2(O_CLOEXEC): dropped, both fds marked
    kept = os.open(f"{tmp_path}/d/.", os.O_RDONLY)  # not normalised: kept
    for fd in (r, w, kept):
        os.close(fd)
    got = _mine_until(source, f"{tmp_path}/.")
    assert not [e for e in got if e.type == "pipe2"]
    closed = [e.args.get("fd") for e in got if e.type == "close"]
    assert r not in closed and w not in closed and kept in closed
    assert source.filter_stats()["close"][1] >= 2
    source.set_filters(None)
