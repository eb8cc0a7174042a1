"""New processes built from their parent and the kernel's event, without reading /proc."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from detector.events import Event, FdInfo, ThreadInfo
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


# -- without the kernel: what the event must show before the parent is trusted -------------

def _offline_with_parent(tmp_path: Path) -> tuple[StateTracker, ThreadInfo]:
    t = StateTracker(read_proc=False, fetch_containers=False)
    parent = ThreadInfo(tid=500, pid=500, ppid=1, comm="bash", exe="bash", args=["-i"],
                        exepath="/usr/bin/bash", cwd=str(tmp_path), exe_ino=11)
    parent.fds[3] = FdInfo(num=3, name="/var/log/app.log", open_flags=1)
    t.put_thread(parent)
    return t, parent


def _ctx(pid: int, ppid: int, comm: str, **more: object) -> dict[str, object]:
    return {"tid": pid, "pid": pid, "ppid": ppid, "comm": comm, "uid": 1000, "gid": 1000,
            "euid": 1000, "egid": 1000, "loginuid": 1000, "sid": 9, "tty": 34816, "vpid": pid,
            "cap_effective": 0, "cap_permitted": 0, "cap_inheritable": 0, "cgroup_id": 0,
            **more}  # fmt: skip


def _ev(type_: str, tid: int, res: int, ctx: dict[str, object], **args: object) -> Event:
    return Event(num=1, ts=5, type=type_, tid=tid, res=res, args=args, ctx=ctx)


def test_a_fork_child_inherits_from_its_parent_and_takes_the_kernels_ids(
    tmp_path: Path,
) -> None:
    t, parent = _offline_with_parent(tmp_path)
    e = t.process(_ev("fork", 501, 0, _ctx(501, 500, "bash", exe_ino=11)))
    th = e.thread
    assert th is not None and th.parent is parent
    assert (th.pid, th.ppid, th.exe, th.args, th.cwd) == (501, 500, "bash", ["-i"], str(tmp_path))
    assert (th.uid, th.loginuid, th.sid, th.vpid) == (1000, 1000, 9, 501)
    assert th.fds[3].name == "/var/log/app.log" and th.fds[3] is not parent.fds[3]  # a copy


@pytest.mark.parametrize("why", ["comm", "exe inode", "clone_parent", "no context"])
def test_a_child_the_event_does_not_vouch_for_is_not_copied_from_its_parent(
    tmp_path: Path, why: str
) -> None:
    t, _ = _offline_with_parent(tmp_path)
    ctx = {"comm": _ctx(501, 500, "sleep"), "exe inode": _ctx(501, 500, "bash", exe_ino=99),
           "clone_parent": _ctx(501, 500, "bash", clone_flags=0x8000),
           "no context": {"tid": 501, "pid": 501, "ppid": 500, "comm": "bash"}}[why]  # fmt: skip
    e = t.process(_ev("clone" if why == "clone_parent" else "openat", 501, 0, ctx))
    th = e.thread
    assert th is not None and th.pid == 501
    assert th.args != ["-i"] and 3 not in th.fds  # nothing of the parent's process copied


def _vfork_child(t: StateTracker, whole: bool) -> ThreadInfo:
    """A vfork child of a renamed thread (comm "worker") that redirects its stdout, then
    execs: with its clone return (``whole``) or without (the kernel filter dropped it)."""
    ctx = _ctx(501, 500, "worker", vforked=True, start_age=40, clone_flags=0x4100)
    if whole:
        t.process(Event(num=1, ts=100, type="vfork", tid=501, res=0, args={}, ctx=ctx))
    dup = t.process(Event(num=2, ts=130, type="dup2", tid=501, res=1,
                          args={"res": 1, "oldfd": 3, "newfd": 1},
                          ctx={**ctx, "start_age": 70}))  # fmt: skip
    assert dup.thread is not None and dup.thread.comm == "worker"
    assert dup.thread.fds[1].name == "/var/log/app.log"  # the dup of the caller's fd 3
    done = t.process(_ev("execve", 501, 0, _ctx(501, 500, "true", start_age=90),
                         filename="/bin/true", args=["x"], exe="/bin/true"))  # fmt: skip
    assert done.thread is not None
    return done.thread


def test_a_vfork_childs_marked_event_builds_it_as_its_clone_return_would(
    tmp_path: Path,
) -> None:
    """A vfork child's clone return goes in the kernel; until it execs, its kept events carry
    the process context, marked: the first builds the child from its waiting caller (its comm
    the calling thread's, not the caller's), started when the kernel says, and the exec then
    finds the same child as with the clone return."""
    made = []
    for whole in (True, False):
        t, parent = _offline_with_parent(tmp_path)
        th = _vfork_child(t, whole)
        assert th.parent is parent and th.start_ts == 60  # 100 - 40 = 130 - 70
        made.append((th.pid, th.ppid, th.comm, th.exe, th.args, th.cwd, th.start_ts,
                     sorted((n, f.name) for n, f in th.fds.items()), th.uid, th.loginuid))
    assert made[0] == made[1]
    assert made[1][2:5] == ("true", "/bin/true", ["x"])


def test_an_exe_path_is_remembered_by_the_files_identity_only(tmp_path: Path) -> None:
    t, _ = _offline_with_parent(tmp_path)
    prog = tmp_path / "prog"
    prog.write_bytes(b"")
    st = prog.stat()
    ident = {"exe_ino": st.st_ino, "exe_ino_ctime": int(st.st_ctime) * 1_000_000_000}
    first = t.process(_ev("execve", 501, 0, _ctx(501, 500, "prog", **ident),
                          filename=str(prog), args=[], exe=str(prog))).thread  # fmt: skip
    t.threads.exe_paths.put(t.threads.exe_paths.key(
        _ev("execve", 501, 0, _ctx(501, 500, "prog", **ident)), first, str(prog)), "/known")  # type: ignore[arg-type]
    again = t.process(_ev("execve", 502, 0, _ctx(502, 500, "prog", **ident),
                          filename=str(prog), args=[], exe=str(prog))).thread  # fmt: skip
    other = t.process(_ev("execve", 503, 0, _ctx(503, 500, "prog", exe_ino=st.st_ino + 1),
                          filename=str(prog), args=[], exe=str(prog))).thread  # fmt: skip
    assert again is not None and again.exepath == "/known"
    assert other is not None and other.exepath == str(prog)


def test_a_host_exe_path_is_resolved_here_when_it_is_the_file_the_kernel_ran(
    tmp_path: Path,
) -> None:
    t, parent = _offline_with_parent(tmp_path)
    t.threads.read_proc = t.threads.exe_paths.read_proc = True  # the child is gone from /proc
    prog = tmp_path / "real"
    prog.write_bytes(b"")
    (tmp_path / "link").symlink_to(prog)
    st = prog.stat()
    ident = {"exe_ino": st.st_ino, "exe_ino_ctime": int(st.st_ctime) * 1_000_000_000}
    pid = 4_190_001
    th = t.process(_ev("execve", pid, 0, _ctx(pid, 500, "link", **ident),
                       filename="link", args=[], exe="link")).thread  # fmt: skip
    assert th is not None and th.parent is parent and th.exepath == str(prog)
    ident["exe_ino"] += 1  # another file than the one found here: not taken for it
    th = t.process(_ev("execve", pid + 1, 0, _ctx(pid + 1, 500, "link", **ident),
                       filename="link", args=[], exe="link")).thread  # fmt: skip
    assert th is not None and th.exepath == str(tmp_path / "link")  # as run: nothing vouched


def test_a_new_thread_of_a_known_process_shares_its_fds_without_proc(tmp_path: Path) -> None:
    t, parent = _offline_with_parent(tmp_path)
    t.threads.read_proc = True  # would read /proc/500/task/777 if the table did not vouch
    e = t.process(_ev("openat", 777, 4, {"tid": 777, "pid": 500, "ppid": 1, "comm": "worker"},
                      dirfd=-100, name="data.db", flags=0))  # fmt: skip
    th = e.thread
    assert th is not None and (th.tid, th.pid, th.comm, th.exe) == (777, 500, "worker", "bash")
    assert th.fds is parent.fds and parent.fds[4].name == f"{tmp_path}/data.db"


def test_a_childs_own_clone_return_vouches_for_it_under_a_renamed_thread(tmp_path: Path) -> None:
    """A thread renamed by prctl forks: its child's first event (its clone return) has the
    thread's comm, not the leader's, and is still the parent's copy (nothing ran in between);
    a later event with that comm is not (it may have exec'd unseen)."""
    t, parent = _offline_with_parent(tmp_path)
    th = t.process(_ev("clone", 501, 0, _ctx(501, 500, "worker", clone_flags=0x11))).thread
    assert th is not None and th.parent is parent
    assert (th.comm, th.exe, th.args, th.exepath) == ("worker", "bash", ["-i"], "/usr/bin/bash")
    later = t.process(_ev("openat", 502, 3, _ctx(502, 500, "worker"))).thread
    assert later is not None and later.args != ["-i"]


def test_a_child_keeps_its_parents_user_unless_its_ids_differ(tmp_path: Path) -> None:
    t, parent = _offline_with_parent(tmp_path)
    parent.uid = parent.gid = parent.loginuid = 1000
    t.threads._set_users(parent)
    same = t.process(_ev("fork", 501, 0, _ctx(501, 500, "bash"))).thread
    assert same is not None and same.user is parent.user and same.group is parent.group
    root = t.process(_ev("fork", 502, 0, _ctx(502, 500, "bash", uid=0, euid=0))).thread
    assert root is not None and root.uid == 0 and root.user is not None
    assert root.user.uid == 0 and root.user.name == "root"  # looked up for its own uid


def test_a_copied_thread_has_every_field_of_its_source_but_its_own_ids() -> None:
    from dataclasses import fields

    from detector.state.clones import copy_thread

    src = ThreadInfo(tid=7, pid=7)
    for n, f in enumerate(fields(ThreadInfo)):
        setattr(src, f.name, object() if f.name not in ("tid", "vtid", "is_vpid1") else n)
    th = copy_thread(src, 9)
    assert (th.tid, th.vtid, th.is_vpid1) == (9, None, False)
    for f in fields(ThreadInfo):
        if f.name not in ("tid", "vtid", "is_vpid1"):
            assert getattr(th, f.name) is getattr(src, f.name), f.name
