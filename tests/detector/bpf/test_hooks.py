"""Per-syscall hooks on the running kernel: what is attached follows the selection."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.bpf.hooks import exit_tracepoints, tracepoint_of
from detector.bpf.loader import enable_stats, prog_stats
from detector.events import Event
from detector.sources.ebpf import EbpfSource
from tests.eventually import eventually
from tests.realparts import need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
NR_GETPPID, NR_INIT_MODULE = 110, 175


@pytest.fixture(scope="module")
def source() -> Iterator[EbpfSource]:
    need_bpf()
    with EbpfSource(syscalls={"unlink", "procexit"}) as src:
        yield src


@pytest.fixture
def stats() -> Iterator[None]:
    fd = enable_stats()
    try:
        yield
    finally:
        os.close(fd)


def _run(code: str, *args: str) -> int:
    """Run Python ``code`` in a child; its pid."""
    out = subprocess.run([sys.executable, "-c", f"import os,sys,ctypes\n{code}\nprint(os.getpid())",
                          *args], capture_output=True, check=True).stdout  # fmt: skip
    return int(out.split()[-1])


def _events_of(src: EbpfSource, pid: int) -> list[Event]:
    """The child's events up to its procexit."""
    got: list[Event] = []

    def done() -> bool:
        got.extend(e for e in src.read(timeout=0.05) if e.ctx and e.ctx["pid"] == pid)
        return any(e.type == "procexit" and e.tid == pid for e in got)

    eventually(done, timeout=5, what=f"procexit of {pid}")
    return got


def test_only_the_selected_syscalls_tracepoints_are_attached(source: EbpfSource) -> None:
    source.set_syscalls({"unlink", "procexit"})
    assert source.hook_used == "syscall_tp"
    assert source.hooks.attached == {"unlink": "syscalls:sys_exit_unlink"}
    assert not source.hooks.raw_attached


def test_selected_arrive_unselected_produce_nothing(source: EbpfSource, tmp_path: Path) -> None:
    source.set_syscalls({"unlink", "procexit"})
    code = "p=sys.argv[1]; open(p,'w').close(); os.rename(p, p+'2'); os.unlink(p+'2')"
    got = _events_of(source, _run(code, str(tmp_path / "f")))
    assert {e.type for e in got} == {"unlink", "procexit"}
    assert [e.args["path"] for e in got if e.type == "unlink"] == [str(tmp_path / "f2")]


def test_selection_changes_at_run_time_without_reload(source: EbpfSource, tmp_path: Path) -> None:
    before = source.program_fds()
    try:
        source.set_syscalls({"rename", "mkdir", "procexit"})
        assert set(source.hooks.attached) == {"rename", "mkdir"}
        code = "p=sys.argv[1]; os.mkdir(p); os.rename(p, p+'2'); os.rmdir(p+'2')"
        got = _events_of(source, _run(code, str(tmp_path / "d")))
        assert {e.type for e in got} == {"rename", "mkdir", "procexit"}
        assert source.program_fds() == before  # the same programs: attached, not reloaded
    finally:
        source.set_syscalls({"unlink", "procexit"})
    assert source.hooks.attached == {"unlink": "syscalls:sys_exit_unlink"}


def test_an_unselected_syscall_runs_no_program(source: EbpfSource, stats: None) -> None:
    """The kernel's own run counts: 20,000 getppid run neither program."""
    source.set_syscalls({"setns", "procexit"})  # a syscall the machine hardly makes
    fds = source.program_fds()
    before = {name: prog_stats(fds[name])[0] for name in ("sys_exit", "sys_exit_tp")}
    libc = ctypes.CDLL(None)
    for _ in range(20_000):
        libc.syscall(NR_GETPPID)
    after = {name: prog_stats(fds[name])[0] for name in ("sys_exit", "sys_exit_tp")}
    source.set_syscalls({"unlink", "procexit"})
    assert after["sys_exit"] == before["sys_exit"]  # the raw hook is not attached at all
    assert after["sys_exit_tp"] - before["sys_exit_tp"] < 1_000  # only other processes' setns


def test_a_syscall_without_tracepoint_moves_everything_to_the_raw_hook_while_selected(
    source: EbpfSource, tmp_path: Path
) -> None:
    """init_module has no tracepoint here: while it is selected the raw hook takes every
    selected syscall (each event once), and the tracepoints come back when it is not."""
    have = exit_tracepoints()
    if tracepoint_of("init_module", have) is not None:
        pytest.skip("this kernel has a tracepoint for init_module (module support)")
    code = (
        f"ctypes.CDLL(None).syscall({NR_INIT_MODULE}, 0, 0, 0)\n"
        "for i in range(3): p=sys.argv[1]+str(i); open(p,'w').close(); os.unlink(p)"
    )
    try:
        source.set_syscalls({"init_module", "unlink", "procexit"})
        assert source.hooks.raw_attached and source.hooks.attached == {}
        got = _events_of(source, _run(code, str(tmp_path / "m")))
        mods = [e for e in got if e.type == "init_module"]
        assert len(mods) == 1 and (mods[0].res or 0) < 0
        assert [e.args["path"] for e in got if e.type == "unlink"] == [
            f"{tmp_path / 'm'}{i}" for i in range(3)]  # fmt: skip
    finally:
        source.set_syscalls({"unlink", "procexit"})
    assert not source.hooks.raw_attached
    assert source.hooks.attached == {"unlink": "syscalls:sys_exit_unlink"}
    got = _events_of(source, _run(code, str(tmp_path / "n")))
    assert [e.type for e in got if e.type != "procexit"] == ["unlink"] * 3


def test_single_hook_mode_takes_every_selected_syscall(tmp_path: Path) -> None:
    need_bpf()
    with EbpfSource(syscalls={"unlink", "procexit"}, hook="tp_btf") as src:
        assert src.hook_used == "tp_btf" and src.hooks.raw_attached and src.hooks.attached == {}
        got = _events_of(src, _run("p=sys.argv[1]; open(p,'w').close(); os.unlink(p)",
                                   str(tmp_path / "g")))  # fmt: skip
    assert {e.type for e in got} == {"unlink", "procexit"}
