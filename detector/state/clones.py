"""What clone/clone3/fork/vfork make of a thread: the child's copy, its ids and its fds.

The parent's exit event (``res`` is the child's tid) creates the child from its parent:
``CLONE_THREAD`` makes a thread of the same process (sharing fds); ``CLONE_FILES`` shares the
fd table, else it is copied; ``CLONE_PARENT`` (runc starts a container's process so) gives the
child the caller's parent; ``CLONE_NEWPID`` makes it pid 1 of a new pid namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter

from detector.events import Event, FdInfo, ThreadInfo
from detector.state.args import arg, as_int

CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_FILES = 0x00000400
CLONE_NEWPID = 0x20000000
CLONE_TYPES = frozenset({"clone", "clone3", "fork", "vfork"})
_FIRST_EVENTS = CLONE_TYPES | {"execve", "execveat"}  # the child's events vouched for whole


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
    comm = ev.ctx.get("comm") if ev.ctx is not None else None
    if isinstance(comm, str):  # the caller's comm now (a thread may have renamed itself)
        child.comm = comm
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
    parent), or a later event whose comm or exe inode differs from the parent's (it ran an
    exec the table never saw). The child's own clone return is its first event: it has run
    nothing yet, so its comm is the calling thread's (maybe not the leader's) and it is built
    as the caller's side would build it. So is any event of a vfork child that has not
    exec'd (``vforked``: its caller waits, unchanged, and the kernel dropped its clone
    return). Ids, creds and container are then set from the event's context; the start time
    from the kernel's (``start_age``), else the event's.
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
    if (ev.type not in _FIRST_EVENTS or (ev.res != 0 and ev.type in CLONE_TYPES)) and not ctx.get(
            "vforked"):  # fmt: skip
        ino = as_int(ctx.get("exe_ino"))
        if comm != parent.comm or (ino and parent.exe_ino and ino != parent.exe_ino):
            return None
    child = copy_thread(parent, tid)
    child.pid = tid
    child.ppid = parent.pid
    child.parent = parent
    child.comm = comm
    child.start_ts = started(ev)
    child.fds = inherited_fds(parent.fds, flags)
    return child


def started(ev: Event) -> int:
    """When the event's task started: the kernel's start time when the record tells its age
    (``start_age``), else the event's time."""
    age = ev.ctx.get("start_age") if ev.ctx is not None else None
    return ev.ts - age if type(age) is int else ev.ts


def inherited_fds(fds: dict[int, FdInfo], flags: int) -> dict[int, FdInfo]:
    """The fd table a child gets: the same one with ``CLONE_FILES``, else a copy."""
    if flags & CLONE_FILES:
        return fds
    return {n: FdInfo(*_FD_FIELDS(f)) for n, f in fds.items()}


_FD_FIELDS = attrgetter(*(f.name for f in fields(FdInfo)))
_OWN = ("tid", "vtid", "is_vpid1")  # what a copy does not take from its source


def _make_copier() -> Callable[[ThreadInfo, int], ThreadInfo]:
    """``copy_thread``'s body, one assignment per field of :class:`ThreadInfo` (about half the
    cost of calling its 37-argument ``__init__``; every new process and thread pays it)."""
    lines = [f"    th.{f.name} = src.{f.name}" for f in fields(ThreadInfo) if f.name not in _OWN]
    text = "\n".join(["def copy(src, tid):", "    th = new(ThreadInfo)", *lines,
                      "    th.tid = tid", "    th.vtid = None", "    th.is_vpid1 = False",
                      "    return th"])  # fmt: skip
    scope: dict[str, object] = {"new": object.__new__, "ThreadInfo": ThreadInfo}
    exec(compile(text, "<copy_thread>", "exec"), scope)  # our own field names only
    copier: Callable[[ThreadInfo, int], ThreadInfo] = scope["copy"]  # type: ignore[assignment]
    return copier


_copy = _make_copier()


def copy_thread(src: ThreadInfo, tid: int) -> ThreadInfo:
    """A new thread ``tid`` with everything of ``src`` but its namespace ids."""
    return _copy(src, tid)
