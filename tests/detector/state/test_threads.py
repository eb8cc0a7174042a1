"""The thread table: clone/exec/exit/setuid/chdir from synthetic events, and a real /proc scan."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from detector.events import Event, ThreadInfo
from detector.state.containers import ContainerManager
from detector.state.threads import CLONE_PARENT, CLONE_THREAD, ThreadTable, resolve_path
from detector.state.tracker import StateTracker
from detector.state.users import UserTable
from tests.eventually import eventually

_num = iter(range(1, 1_000_000))


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def ev(type_: str, tid: int, res: int | None = 0, **args: object) -> Event:
    ctx = args.pop("ctx", None)
    return Event(num=next(_num), ts=time.time_ns(), type=type_, tid=tid, res=res, args=args,
                 ctx=ctx)  # type: ignore[arg-type]


def offline() -> StateTracker:
    """A tracker that reads nothing from /proc: only the events count."""
    return StateTracker(read_proc=False, fetch_containers=False)


def seed(tracker: StateTracker, tid: int, pid: int, comm: str, parent: ThreadInfo | None = None,
         ) -> ThreadInfo:
    th = ThreadInfo(tid=tid, pid=pid, comm=comm, exe=comm, ppid=parent.pid if parent else 0,
                    parent=parent, cwd="/home/u")
    tracker.put_thread(th)
    return th


def test_resolve_path_normalises() -> None:
    assert resolve_path("/home/u", "../etc//./shadow") == "/home/etc/shadow"
    assert resolve_path("/x", "/etc/../etc/passwd") == "/etc/passwd"
    assert resolve_path("/", "a/b/") == "/a/b"


def test_fork_links_child_to_caller_and_exec_sets_comm_from_filename() -> None:
    t = offline()
    init = seed(t, 1, 1, "systemd")
    bash = seed(t, 100, 100, "bash", init)
    t.process(ev("clone", 100, res=200, flags=0))
    child = t.threads.threads[200]
    assert child.parent is bash and child.ppid == 100 and child.comm == "bash"
    # execve of a symlink: proc.name is the name passed (field-semantics #4), exe is argv[0].
    e = t.process(ev("execve", 200, filename="/usr/bin/vi", exe="vi-alias",
                     args=b"-R\x00/etc/motd\x00", trusted_exepath="/usr/bin/vim.basic"))
    assert e.thread is child
    assert (child.comm, child.exe, child.args, child.exepath) == (
        "vi", "vi-alias", ["-R", "/etc/motd"], "/usr/bin/vim.basic")
    assert [a.comm for a in child.ancestors()] == ["bash", "systemd"]


def test_failed_exec_changes_nothing() -> None:
    t = offline()
    seed(t, 10, 10, "bash")
    t.process(ev("execve", 10, res=-2, filename="/nope", exe="nope", args=[]))
    assert t.threads.threads[10].comm == "bash"


def test_clone_parent_gives_the_callers_parent() -> None:
    # runc starts a container's process with CLONE_PARENT (field-semantics #6).
    t = offline()
    conmon = seed(t, 50, 50, "conmon")
    runc = seed(t, 60, 60, "runc", conmon)
    t.process(ev("clone", 60, res=61, flags=CLONE_PARENT))
    assert t.threads.threads[61].parent is conmon
    assert runc.parent is conmon


def test_clone_thread_shares_process_and_fds() -> None:
    t = offline()
    p = seed(t, 70, 70, "java")
    t.process(ev("openat", 70, res=3, dirfd=-100, name="a.txt", flags=0))
    t.process(ev("clone", 70, res=71, flags=CLONE_THREAD))
    th = t.threads.threads[71]
    assert th.pid == 70 and th.fds is p.fds and th.fds[3].name == "/home/u/a.txt"
    # exec in a thread: the process keeps one thread, tid == pid
    t.process(ev("execve", 71, exe="sh", args=[], filename="/bin/sh"))
    assert 71 not in t.threads.threads and t.threads.threads[70].comm == "sh"


def test_kernel_ppid_relinks_a_reparented_thread() -> None:
    t = offline()
    init = seed(t, 1, 1, "init")
    mid = seed(t, 5, 5, "mid", init)
    leaf = seed(t, 6, 6, "leaf", mid)
    t.process(ev("read", 6, res=0, fd=0, ctx={"ppid": 1}))
    assert leaf.parent is init and leaf.ppid == 1


def test_exit_lingers_then_reaps() -> None:
    t = StateTracker(read_proc=False, fetch_containers=False)
    seed(t, 80, 80, "x")
    e = ev("procexit", 80)
    t.process(e)
    assert 80 in t.threads.threads  # late events still find it
    t.threads.reap(e.ts + 2_000_000_000)
    assert 80 not in t.threads.threads


def test_setuid_and_chdir() -> None:
    t = offline()
    th = seed(t, 90, 90, "su")
    t.process(ev("setresuid", 90, ruid=1000, euid=1000, suid=1000))
    assert th.uid == 1000 and th.user is not None and th.user.uid == 1000
    t.process(ev("setuid", 90, res=-1, uid=0))
    assert th.uid == 1000
    t.process(ev("chdir", 90, path="../tmp"))
    assert th.cwd == "/home/tmp"


def test_unknown_gone_thread_is_built_from_the_kernel_context() -> None:
    t = offline()
    e = t.process(ev("openat", 4_000_000, res=-2, dirfd=-100, name="x",
                     ctx={"pid": 4_000_000, "ppid": 0, "comm": "ghost", "uid": 7}))
    assert e.thread is not None and e.thread.comm == "ghost" and e.thread.uid == 7


def test_scan_reads_a_real_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "arg1"],
                             cwd="/tmp")
    try:
        t = StateTracker(fetch_containers=False)
        eventually(lambda: b"arg1" in _read(f"/proc/{child.pid}/cmdline"), what="argv set")
        assert t.scan() > 2
        th = t.threads.threads[child.pid]
        assert th.args[-1] == "arg1" and th.exe == sys.executable
        assert th.exepath == os.path.realpath(sys.executable)
        assert th.cwd == "/tmp"
        assert th.parent is t.threads.threads[os.getpid()]
        assert th.container.id == "host"
        assert th.user is not None and th.user.uid == os.geteuid()
        assert abs(th.start_ts - time.time_ns()) < 60_000_000_000
    finally:
        child.kill()
        child.wait()


def test_lazy_build_for_a_thread_started_after_the_scan() -> None:
    t = ThreadTable(containers=ContainerManager(fetch=False), users=UserTable())
    child = subprocess.Popen(["sleep", "30"])
    try:
        eventually(lambda: _read(f"/proc/{child.pid}/comm") == b"sleep\n", what="sleep exec'd")
        th = t.get(child.pid)
        assert th is not None and th.pid == child.pid
        assert th.parent is not None and th.parent.pid == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_exec_of_a_setgid_program_or_a_new_login_uid_looks_up_the_group_and_login_user() -> None:
    # Only the gid (a setgid program) or only the login uid changes: user.* stays, group.* and
    # user.loginname follow (they were kept from before the exec when only uid was compared).
    t = offline()
    seed(t, 50, 50, "sh")
    ids = {"uid": 0, "gid": 65534, "loginuid": 4294967295}
    t.process(ev("execve", 50, filename="/bin/a", exe="a", args=[], ctx=dict(ids)))
    th = t.threads.threads[50]
    assert th.group is not None and th.group.gid == 65534 and th.loginuser is None
    t.process(ev("execve", 50, filename="/bin/b", exe="b", args=[],
                 ctx={**ids, "egid": 0}))
    assert th.group is not None and (th.group.gid, th.group.name) == (0, "root")
    t.process(ev("execve", 50, filename="/bin/c", exe="c", args=[],
                 ctx={**ids, "gid": 0, "loginuid": 0}))
    assert th.loginuser is not None and (th.loginuser.uid, th.loginuser.name) == (0, "root")
    assert th.user is not None and th.user.uid == 0
