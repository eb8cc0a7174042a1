"""What clone/clone3/fork/vfork make of a thread: the child's copy, its ids and its fds.

The parent's exit event (``res`` is the child's tid) creates the child from its parent:
``CLONE_THREAD`` makes a thread of the same process (sharing fds); ``CLONE_FILES`` shares the
fd table, else it is copied; ``CLONE_PARENT`` (runc starts a container's process so) gives the
child the caller's parent; ``CLONE_NEWPID`` makes it pid 1 of a new pid namespace.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter

from detector.events import Event, FdInfo, ThreadInfo
from detector.state.args import arg, as_int

CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_FILES = 0x00000400
CLONE_NEWPID = 0x20000000


def clone_flags(ev: Event) -> int:
    """The clone flags of a clone-family event (0 when the source does not tell them)."""
    flags = as_int(arg(ev, "clone_flags"))
    if flags is None:
        flags = as_int(ev.args.get("flags")) or 0
    return flags


def child_of(ev: Event, th: ThreadInfo, res: int, leader: ThreadInfo) -> ThreadInfo:
    """The thread ``res`` that ``th`` (whose process leader is ``leader``) just cloned."""
    flags = clone_flags(ev)
    child = copy_thread(th, res)
    child.start_ts = ev.ts
    child.exec_ts = th.exec_ts
    # Ids in the child's pid namespace: 1 in a new one; its host id when the caller is in
    # the host's; else unknown until the child's own clone return says.
    host_ns = th.vtid is not None and th.vtid == th.tid
    vid = 1 if flags & CLONE_NEWPID else (res if host_ns else None)
    child.vtid = vid
    if flags & CLONE_THREAD:
        child.pid = th.pid
        child.fds = th.fds
        child.ppid, child.parent = th.ppid, th.parent
        return child
    child.pid = as_int(arg(ev, "child_pid")) or res
    child.vpid = vid
    child.is_vpid1 = vid == 1
    child.fds = inherited_fds(th.fds, flags)
    if flags & CLONE_PARENT:
        child.ppid, child.parent = th.ppid, th.parent
    else:
        child.ppid = th.pid
        child.parent = leader
    return child


def child_from_event(ev: Event, tid: int, parent: ThreadInfo) -> ThreadInfo | None:
    """The new process ``tid`` as fork made it from ``parent`` (its ``ppid``), built at its own
    first event, which can come before the parent's clone return (a vfork child's execve does).

    None when the event cannot vouch for it: no kernel process context (the source gave no
    creds, caps, cgroup), a ``CLONE_PARENT``/``CLONE_THREAD`` clone (the caller is not the
    parent), or a non-exec event whose comm or exe inode differs from the parent's (it ran an
    exec the table never saw). Ids, creds and container are then set from the event's context.
    """
    ctx = ev.ctx
    if ctx is None or "cap_effective" not in ctx:
        return None
    flags = as_int(ctx.get("clone_flags")) or 0
    if flags & (CLONE_PARENT | CLONE_THREAD):
        return None
    comm = ctx.get("comm")
    if not isinstance(comm, str):
        return None
    if ev.type not in ("execve", "execveat"):
        ino = as_int(ctx.get("exe_ino"))
        if comm != parent.comm or (ino and parent.exe_ino and ino != parent.exe_ino):
            return None
    child = copy_thread(parent, tid)
    child.pid = tid
    child.ppid = parent.pid
    child.parent = parent
    child.comm = comm
    child.start_ts = ev.ts
    child.fds = inherited_fds(parent.fds, flags)
    return child


def inherited_fds(fds: dict[int, FdInfo], flags: int) -> dict[int, FdInfo]:
    """The fd table a child gets: the same one with ``CLONE_FILES``, else a copy."""
    if flags & CLONE_FILES:
        return fds
    return {n: FdInfo(*_FD_FIELDS(f)) for n, f in fds.items()}


_THREAD_FIELDS = attrgetter(*(f.name for f in fields(ThreadInfo)))
_FD_FIELDS = attrgetter(*(f.name for f in fields(FdInfo)))


def copy_thread(src: ThreadInfo, tid: int) -> ThreadInfo:
    """A new thread ``tid`` with everything of ``src`` but its namespace ids."""
    th = ThreadInfo(*_THREAD_FIELDS(src))
    th.tid = tid
    th.vtid = None
    th.is_vpid1 = False
    return th
