"""The kernel filter applied in Python to recorded events: what the kernel would have kept.

Used to prove the filters sound: the same raw events (as the eBPF source decodes them, before
the state tracker) go through the tracker and the rules once whole and once filtered by
:func:`filtered`, and must raise the same alerts. ``is_dir`` is read from the file system
(the kernel reads the opened file's inode), so recordings are replayed where they were made.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterable, Iterator
from typing import Any

from detector.events import Event
from detector.kfilter.plan import (
    DUP_CMDS,
    UBUF_FDS,
    Facts,
    KernelPlan,
    Marks,
    SyscallFilter,
    event_flags,
)
from detector.kfilter.sockatoms import HIST_SERVED, SockFacts
from detector.sources.layout import (
    HIST_CLIENT,
    HIST_CLOEXEC,
    HIST_CONNECTED,
    HIST_HERE,
    HIST_SEEN,
    HIST_SERVER,
    L4_CODES,
    l4_code,
)
from detector.sources.syscalls import FD_EVENTS

EXECS = frozenset({"execve", "execveat"})
ARG0_ENTRIES = frozenset({"connect", "bind", "listen"})  # make an entry for their fd argument
HIST_ROLES = {"socket": 0, "connect": HIST_CLIENT, "accept": HIST_SERVER, "accept4": HIST_SERVER}
TUPLE_KEYS = ("sock_family", "l4proto", "lip", "lport", "rip", "rport")
SOCK_CLOEXEC = 0o2000000
AT_FDCWD = -100
JOINED = frozenset({"openat", "openat2"})  # the kernel joins their relative names to dirfd's
DUPS = frozenset({"dup", "dup2", "dup3", "fcntl"})
CLONE_THREAD = 0x10000


def _ip(text: object) -> bytes:
    raw = str(text)
    if ":" in raw:
        return socket.inet_pton(socket.AF_INET6, raw)
    return socket.inet_pton(socket.AF_INET, raw) + bytes(12)


def sock_facts(ev: Event) -> SockFacts | None:
    """The kernel socket the program reads at a socket event (the record's tuple; for
    ``socket``, which carries none, what the kernel makes of its arguments)."""
    ctx = ev.ctx or {}
    if "lip" in ctx and ev.type != "socket":
        fam = int(socket.AF_INET6 if ctx.get("sock_family") == "ipv6" else socket.AF_INET)
        l4 = str(ctx.get("l4proto"))
        lport, rport = ctx.get("lport"), ctx.get("rport")
        return (fam, int(socket.SOCK_STREAM if l4 == "tcp" else socket.SOCK_DGRAM),
                L4_CODES.get(l4, 6), _ip(ctx["lip"]), lport if isinstance(lport, int) else 0,
                _ip(ctx["rip"]), rport if isinstance(rport, int) else 0)  # fmt: skip
    a = ev.args
    dom, typ, proto = a.get("domain"), a.get("type"), a.get("proto")
    if ev.type != "socket" or ev.res is None or ev.res < 0 or dom not in (socket.AF_INET,
                                                                            socket.AF_INET6):
        return None
    stype: int = typ & 0xF if isinstance(typ, int) else 0
    p = proto if isinstance(proto, int) else 0
    if p == 0:  # the kernel's default protocol of the type
        p = {int(socket.SOCK_STREAM): 6, int(socket.SOCK_DGRAM): 17}.get(stype, 0)
    assert isinstance(dom, int)
    return (dom, stype, l4_code(p, stype), bytes(16), 0, bytes(16), 0)


def facts_of(ev: Event) -> Facts:
    """What the kernel program had in hand for this decoded event."""
    a, res = ev.args, ev.res if ev.res is not None else -1
    raw = a.get("cmd" if ev.type == "fcntl" else "flags")
    flags = event_flags(ev.type, (), None) if ev.type == "creat" else (
        raw & 0xFFFFFFFF if isinstance(raw, int) else None)  # fmt: skip
    got = a.get("name")
    name = got if isinstance(got, str) else None
    is_dir = bool(name and name.startswith("/") and res >= 0 and os.path.isdir(name))
    made: tuple[int, ...] = ()
    if ev.type in UBUF_FDS:
        made = tuple(v for v in (a.get("fd1"), a.get("fd2")) if isinstance(v, int))
    elif ev.type in ARG0_ENTRIES:
        fd0 = a.get("fd")
        made = (fd0,) if isinstance(fd0, int) else ()
    elif ev.type in FD_EVENTS:
        made = (res,)
    fd = a.get("fd")
    return Facts(ev.type, res, flags, name, is_dir,
                 fd_arg=fd if ev.type == "close" and isinstance(fd, int) else -1,
                 fds_made=made, sock=sock_facts(ev))  # fmt: skip


class History:
    """The kernel's history of sockets whose socket/connect/accept it dropped (kfilter.h
    ``kf_hist``), keyed by the socket's inode (the record's ``sock_ino``): one per socket, so
    shared across fork and dup; a dup-family record of such a socket carries it."""

    def __init__(self) -> None:
        self.socks: dict[int, dict[str, Any]] = {}

    def update(self, ev: Event, kept: bool) -> None:
        """A socket event: a dropped one records its history; after a kept connect (with any
        plan: detector/bpf/kfmaps.py) it no longer applies to that fd number."""
        ino = ev.ctx.get("sock_ino") if ev.ctx else None
        if ev.type not in HIST_ROLES or not isinstance(ino, int) or ev.ctx is None:
            return
        if kept:
            if ev.type == "connect" and ino in self.socks:  # its fd's entry: not HIST_HERE
                self.socks[ino]["fd"] = None
            return
        res, flags = ev.res if ev.res is not None else -1, HIST_SEEN | HIST_ROLES[ev.type]
        if ev.type == "connect" and res in (0, -115):
            flags |= HIST_CONNECTED
        typ = ev.args.get("type")
        if ev.type == "socket" and isinstance(typ, int) and typ & SOCK_CLOEXEC:
            flags |= HIST_CLOEXEC
        snap = {k: ev.ctx[k] for k in TUPLE_KEYS if k in ev.ctx}
        fd = ev.args.get("fd") if ev.type == "connect" else ev.res
        self.socks[ino] = {**snap, "sock_hist": flags, "fd": fd}

    def carried(self, ev: Event) -> Event:
        """A dup-family record: the history of its socket replaces its tuple, if it has one."""
        ino = ev.ctx.get("sock_ino") if ev.ctx else None
        got = self.socks.get(ino) if ev.type in HIST_SERVED and isinstance(ino, int) else None
        if got is None or ev.ctx is None:
            return ev
        a = ev.args
        old = a.get("fd") if ev.type == "fcntl" else a.get("oldfd", a.get("fd"))
        here = HIST_HERE if old == got["fd"] else 0
        carried = {k: v for k, v in got.items() if k != "fd"}
        carried["sock_hist"] |= here
        return dataclasses.replace(ev, ctx={**ev.ctx, **carried})


class Dirs:
    """The kernel's paths of the directories whose opens it dropped (kfilter.h ``kf_dirs``, by
    ``struct file``), modelled by (process, fd): a dup copies the path (the same file), a
    forked child gets its parent's, a close or a new fd of that number forgets it. A name
    joined to one is judged as the joined path; ``..`` (how a traversal walks up) as the
    directory's parent."""

    def __init__(self) -> None:
        self.paths: dict[tuple[int, int], str] = {}

    def facts(self, ev: Event, pid: int, f: Facts) -> tuple[Facts, str | None]:
        """The facts with a relative name joined to its dirfd's path (and whether that is a
        directory) or, for fcntl, whether its fd has a path; and the path found, if any (for
        fchdir, its fd's)."""
        a = ev.args
        fd = a.get("fd")
        if ev.type == "fcntl":
            return dataclasses.replace(f, is_dir=(pid, fd) in self.paths), None
        if ev.type == "fchdir":
            return f, self.paths.get((pid, fd)) if isinstance(fd, int) else None
        name, dirfd = a.get("name"), a.get("dirfd")
        if ev.type not in JOINED or not isinstance(name, str) or not name or name[0] == "/":
            return f, None
        d = self.paths.get((pid, dirfd)) if isinstance(dirfd, int) and dirfd != AT_FDCWD else None
        if d is None:
            return f, None
        path = os.path.dirname(d) if name == ".." else ("" if d == "/" else d) + "/" + name
        return dataclasses.replace(f, path=path, is_dir=f.ret >= 0 and os.path.isdir(path)), d

    def update(self, ev: Event, pid: int, f: Facts, sf: SyscallFilter, kept: bool) -> None:
        a, paths = ev.args, self.paths
        if ev.type in DUPS and f.ret >= 0 and (ev.type != "fcntl" or f.flags in DUP_CMDS):
            old = a.get("fd") if ev.type == "fcntl" else a.get("oldfd")
            got = paths.get((pid, old)) if isinstance(old, int) else None
            if got is not None:
                paths[(pid, f.ret)] = got
                return
        fd0 = a.get("fd")
        if ev.type == "close" and isinstance(fd0, int):
            paths.pop((pid, fd0), None)
        for fd in f.fds_made:
            paths.pop((pid, fd), None)
        if not kept and sf.dirpaths and f.is_dir and f.ret >= 0 and f.path is not None:
            paths[(pid, f.ret)] = f.path
        ptid, flags = a.get("ptid"), a.get("flags")
        if ev.type in ("clone", "clone3", "fork", "vfork") and f.ret == 0 and not (
                isinstance(flags, int) and flags & CLONE_THREAD):  # fmt: skip
            paths.update({(pid, fd): d for (p, fd), d in list(paths.items()) if p == ptid})
        elif ev.type == "procexit" and ev.tid == pid:
            self.paths = {k: d for k, d in paths.items() if k[0] != pid}


def filtered(plan: KernelPlan, events: Iterable[Event]) -> Iterator[Event]:
    """The events the kernel would deliver under ``plan`` (its marks, its history of sockets
    and its paths of dropped directories included)."""
    marks, hist, dirs = Marks(), History(), Dirs()
    for ev in events:
        got = ev.ctx.get("pid") if ev.ctx else None
        pid = got if isinstance(got, int) else ev.tid
        sf = plan.filter_of(ev.type)
        f, dirpath = facts_of(ev), None
        if sf.dirpaths or sf.dirfd:
            f, dirpath = dirs.facts(ev, pid, f)
        kept = marks.keep(plan, f, pid)
        hist.update(ev, kept)
        dirs.update(ev, pid, f, sf, kept)
        if kept:
            out = hist.carried(ev)
            if dirpath is not None and sf.dirpaths and (ev.type == "fchdir" or not sf.keep_all):
                out = dataclasses.replace(out, ctx={**(out.ctx or {}), "dirpath": dirpath})
            yield out
        if (ev.type in EXECS and (ev.res or 0) == 0) or (ev.type == "procexit" and ev.tid == pid):
            marks.process_gone(pid)
