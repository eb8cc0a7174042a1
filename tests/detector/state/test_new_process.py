"""New processes built from their parent and the kernel's event, without reading /proc."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from detector.events import Event, ThreadInfo
from detector.sources.ebpf import EbpfSource
from detector.state import procfs
from detector.state.containers import HOST
from detector.state.tracker import StateTracker
from tests.eventually import eventually
from tests.realparts import need_bpf

SELECTED = {"execve", "execveat", "clone", "clone3", "fork", "vfork", "procexit", "openat",
            "close", "chdir"}  # fmt: skip


class ProcReads:
    """The /proc paths the state reads, recorded around procfs's readers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        for name in ("read_text", "read_link", "read_environ"):
            monkeypatch.setattr(procfs, name, self._wrap(getattr(procfs, name)))
        real_thread = procfs.read_thread

        def read_thread(tid: int, pid: int | None = None, **kw: Any) -> Any:
            self.paths.append(f"/proc/{tid}/ (whole thread)")
            return real_thread(tid, pid, **kw)

        monkeypatch.setattr(procfs, "read_thread", read_thread)

    def _wrap(self, fn: Callable[[str], Any]) -> Callable[[str], Any]:
        def counted(path: str) -> Any:
            self.paths.append(path)
            return fn(path)

        return counted

    def of(self, pid: int) -> list[str]:
        """The reads of process ``pid``'s files."""
        return [p for p in self.paths if p.startswith(f"/proc/{pid}/")]


@pytest.fixture(scope="module")
def source() -> Iterator[EbpfSource]:
    need_bpf()
    src = EbpfSource(syscalls=SELECTED).open()
    try:
        yield src
    finally:
        src.close()


def _run(src: EbpfSource, tracker: StateTracker, argv: list[str]) -> tuple[int, list[Event]]:
    """posix_spawn (a vfork: the child execs before the parent returns) ``argv``; every event
    through the tracker until the child's procexit; the child's pid and events."""
    while src.read(timeout=0):
        pass
    pid = os.posix_spawn(argv[0], argv, {"STATEFAST_MARK": "m1", **os.environ})
    os.waitpid(pid, 0)
    got: list[Event] = []

    def exited() -> bool:
        for ev in src.read(timeout=0.05):
            tracker.process(ev)
            if ev.ctx is not None and ev.ctx.get("pid") == pid:
                got.append(ev)
        return any(e.type == "procexit" and e.tid == pid for e in got)

    eventually(exited, timeout=10, what=f"the procexit of {pid}")
    return pid, got


def _exec_thread(events: list[Event]) -> ThreadInfo:
    execs = [e for e in events if e.type == "execve" and e.res == 0]
    assert execs, [e.type for e in events]
    th = execs[-1].thread
    assert th is not None
    return th


@pytest.mark.root
@pytest.mark.bpf
def test_a_vfork_exec_child_is_built_from_its_parent_and_the_event_without_proc(
    source: EbpfSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    me = tracker.threads.threads[os.getpid()]
    reads = ProcReads(monkeypatch)
    for round_ in (1, 2):  # a program run twice: the second exec needs nothing at all
        pid, events = _run(source, tracker, ["/bin/true", "one", f"two-{round_}"])
        th = _exec_thread(events)
        assert (th.tid, th.pid, th.ppid, th.parent) == (pid, pid, os.getpid(), me)
        assert th.parent is not None and th.parent.comm == me.comm  # proc.pname
        assert (th.comm, th.exe, th.args) == ("true", "/bin/true", ["one", f"two-{round_}"])
        assert th.exepath == os.path.realpath("/bin/true")
        assert (th.vpid, th.vtid, th.is_vpid1) == (pid, pid, False)
        assert th.container is HOST and th.cwd == me.cwd
        assert (th.uid, th.loginuid, th.tty) == (os.geteuid(), me.loginuid, me.tty)
        assert "STATEFAST_MARK=m1" in th.env
        assert reads.of(pid) == [], reads.of(pid)


@pytest.mark.root
@pytest.mark.bpf
def test_a_child_of_an_unknown_parent_is_still_read_from_proc(
    source: EbpfSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    tracker.threads.threads.pop(os.getpid())  # the parent is not in the table: /proc decides
    reads = ProcReads(monkeypatch)
    pid, events = _run(source, tracker, ["/bin/sleep", "0.2"])
    th = _exec_thread(events)
    assert (th.pid, th.ppid, th.comm, th.args) == (pid, os.getpid(), "sleep", ["0.2"])
    assert any("whole thread" in p for p in reads.of(pid))
