"""The fd table of each process: files, directories, sockets, pipes, memfds and other kernel fds.

Events update a process's table (``ThreadInfo.fds``, shared by its threads) and get ``Event.fd``:

* open/openat/openat2/creat: ``fd.name`` is the path resolved against the cwd or ``dirfd`` (the
  record's ``dirpath`` when the kernel dropped the directory's open) and normalised,
  ``fd.nameraw`` the path as passed; ``directory`` when ``O_DIRECTORY`` was asked.
  A failed open gets an fd with ``num=-1`` (``open_file_failed`` matches ``fd.num=-1``).
* socket/socketpair/connect/accept/accept4/bind/listen: family, ``l4proto``, both ends, roles
  (client for connect, server for accept/listen); ``fd.name`` is ``cip:cport->sip:sport``.
* dup/dup2/dup3/fcntl(F_DUPFD): the new fd inherits the old one's type and name
  (field-semantics #12); the event's fd is the one the syscall takes (``oldfd``: libsinsp's
  ``fd.num`` is that number, ``evt.rawres`` the new one); close: the fd is attached to the
  event, then dropped.
* pipe/pipe2, memfd_create, eventfd, signalfd, inotify_init, timerfd_create, epoll_create,
  userfaultfd, bpf, io_uring_setup, pidfd_open: typed fds.
* Any other event gets the fd it uses, as libscap's event table says (``EF_USES_FD``: the
  enter event's first fd parameter; :data:`USED_FD` names it where it is not ``fd``): read,
  write, sendto, recvfrom, fchmod, fchdir, ioctl... An fd never seen (opened before the scan,
  or missed) is read lazily from ``/proc/PID/fd`` and ``/proc/PID/net/*``. The table is in
  ``docs/state-fds.md``.

Socket addresses in event arguments may be ``(ip, port)`` pairs, ``{"ip", "port"}`` or
``{"path"}`` dicts, ``"ip:port"`` text or a Unix path; a ``tuple`` argument may also be
Falco's text ``"sip:sport->dip:dport"``. The local end comes from the context key ``local``
when the source knows it.
"""

from __future__ import annotations

from collections.abc import Callable

from detector.events import Event, FdInfo, ThreadInfo
from detector.state.args import as_int, as_str
from detector.state.exefacts import resolve_path
from detector.state.fdproc import read_proc_fd
from detector.state.sockets import from_history, parse_endpoint, parse_tuple, set_ends

AT_FDCWD = -100
O_DIRECTORY = 0o200000
O_CLOEXEC = 0o2000000
O_CREAT_WRONLY_TRUNC = 0o1101
EINPROGRESS = 115
F_DUPFD = 0
F_DUPFD_CLOEXEC = 1030

# The parameter holding the fd an event uses, where it is not ``fd`` (libscap's event table).
USED_FD: dict[str, str] = {
    "dup": "oldfd", "dup2": "oldfd", "dup3": "oldfd", "sendfile": "out_fd", "splice": "fd_in",
    "copy_file_range": "fdin", "mkdirat": "dirfd", "unlinkat": "dirfd", "fchmodat": "dirfd",
    "fchownat": "dirfd", "mknodat": "dirfd", "newfstatat": "dirfd", "symlinkat": "linkdirfd",
}
_FAMILY = {1: ("unix", "unix"), 2: ("ipv4", "ip"), 10: ("ipv6", "ip"), 16: ("netlink", None)}
_SOCKTYPE = {1: "tcp", 2: "udp", 3: "raw", 5: "tcp"}
_SIMPLE_TYPES = {
    "eventfd": "event", "eventfd2": "event", "signalfd": "signalfd", "signalfd4": "signalfd",
    "inotify_init": "inotify", "inotify_init1": "inotify", "timerfd_create": "timerfd",
    "epoll_create": "eventpoll", "epoll_create1": "eventpoll", "userfaultfd": "userfaultfd",
    "bpf": "bpf", "io_uring_setup": "io_uring", "pidfd_open": "pidfd",
}


def _int(v: object) -> int | None:
    """:func:`as_int` with the common case (an int) first: the handlers below are per event."""
    return v if type(v) is int else as_int(v)


class FdTracker:
    """Keeps per-process fd tables from events; ``handle`` returns the event's fd."""

    def __init__(self, *, proc_root: str = "/proc", read_proc: bool = True) -> None:
        self.proc_root = proc_root
        self.read_proc = read_proc
        self._misses: set[tuple[int, int]] = set()
        self._used: dict[str, Callable[[Event, ThreadInfo], FdInfo | None]] = {}
        self.handlers: dict[str, Callable[[Event, ThreadInfo], FdInfo | None]] = {
            "open": self._open, "openat": self._open, "openat2": self._open,
            "creat": self._open, "socket": self._socket, "socketpair": self._socketpair,
            "connect": self._connect, "accept": self._accept, "accept4": self._accept,
            "bind": self._bind, "listen": self._listen, "close": self._close,
            "dup": self._dup, "dup2": self._dup, "dup3": self._dup, "fcntl": self._fcntl,
            "pipe": self._pipe, "pipe2": self._pipe, "memfd_create": self._memfd,
        }
        for name in _SIMPLE_TYPES:
            self.handlers[name] = self._simple

    def handle(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        """Update ``th``'s table for ``ev`` and return the fd the event acts on."""
        return self.handler_for(ev.type)(ev, th)

    def handler_for(self, etype: str) -> Callable[[Event, ThreadInfo], FdInfo | None]:
        """What :meth:`handle` does for events of ``etype`` (made once per type)."""
        handler = self.handlers.get(etype) or self._used.get(etype)
        if handler is not None:
            return handler
        if len(self._used) >= 1024:  # event types are a few hundred: a bound, never reached
            self._used.clear()
        handler = self._used[etype] = self._used_fd(etype)
        return handler

    def _used_fd(self, etype: str) -> Callable[[Event, ThreadInfo], FdInfo | None]:
        """The handler of an event that only uses an fd (its number under libscap's name)."""
        key = USED_FD.get(etype, "fd")
        fds_lookup = self.lookup

        def used(ev: Event, th: ThreadInfo) -> FdInfo | None:
            fd = ev.args.get(key)
            if type(fd) is int and fd >= 0:
                return th.fds.get(fd) or fds_lookup(th, fd)
            return None

        return used

    def lookup(self, th: ThreadInfo, num: int) -> FdInfo | None:
        """An fd missing from the table, read from /proc (None if the process is gone)."""
        if not self.read_proc or (th.pid, num) in self._misses:
            return None
        info = read_proc_fd(self.proc_root, th.pid, num)
        if info is None:
            if len(self._misses) > 4096:
                self._misses.clear()
            self._misses.add((th.pid, num))
            return None
        th.fds[num] = info
        return info

    # -- handlers ---------------------------------------------------------------------------
    def _open(self, ev: Event, th: ThreadInfo) -> FdInfo:
        """The opened file (the most frequent event: the common case is written out inline)."""
        a = ev.args
        raw = a.get("name")
        if type(raw) is not str or not raw:
            raw = as_str(raw) or as_str(a.get("path")) or ""
        got = a.get("flags")
        flags: int = O_CREAT_WRONLY_TRUNC if ev.type == "creat" else \
            got if type(got) is int else 0
        if raw[:1] == "/":
            clean = "//" not in raw and "/." not in raw and (raw[-1] != "/" or raw == "/")
            name = raw if clean else resolve_path(th.cwd, raw)
        else:
            dirfd = a.get("dirfd")
            ctx = ev.ctx
            if type(dirfd) is not int or dirfd == AT_FDCWD:
                base = th.cwd
            elif ctx is not None and "dirpath" in ctx:  # a directory the kernel dropped
                base = str(ctx["dirpath"])
            else:
                d = th.fds.get(dirfd) or self.lookup(th, dirfd)
                base = d.name if d is not None and d.name.startswith("/") else th.cwd
            name = resolve_path(base, raw)
        res = ev.res
        if res is None:
            got = a.get("fd")
            res = got if type(got) is int else None
        dev = a.get("dev")
        ino = a.get("ino")
        # positional: num, type, name, nameraw, open_flags, dev, ino (tests/detector/state/
        # test_fd_route.py checks FdInfo's order); per open, keywords cost more
        info = FdInfo(
            res if res is not None and res >= 0 else -1,
            "directory" if flags & O_DIRECTORY else "file",
            name,
            raw,
            flags,
            dev if type(dev) is int else None,
            ino if type(ino) is int else None,
        )
        if res is not None and res >= 0:
            th.fds[res] = info
        return info

    def _socket(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        res = ev.res
        if res is None or res < 0:
            return None
        a = ev.args
        ftype, family = _FAMILY.get(as_int(a.get("domain")) or 0, ("file", None))
        stype = (as_int(a.get("type")) or 0) & 0xF
        info = FdInfo(
            num=res, type=ftype, sockfamily=family,
            l4proto=_SOCKTYPE.get(stype) if family == "ip" else None,
            open_flags=O_CLOEXEC if (as_int(a.get("type")) or 0) & O_CLOEXEC else 0,
        )
        th.fds[res] = info
        return info

    def _socketpair(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        if ev.res is None or ev.res < 0:
            return None
        first = None
        for key in ("fd1", "fd2"):
            num = as_int(ev.args.get(key))
            if num is not None and num >= 0:
                th.fds[num] = FdInfo(num=num, type="unix", sockfamily="unix")
                first = first or th.fds[num]
        return first

    def _sock(self, th: ThreadInfo, num: int | None, ev: Event | None = None) -> FdInfo | None:
        """The socket entry a bind/listen changes: the table's; else, when the kernel dropped
        the socket's creation, what it made (from the history the record carries, no /proc
        read: a /proc/net scan costs milliseconds on a busy node); else /proc's."""
        if num is None or num < 0:
            return None
        info = th.fds.get(num)
        ctx = ev.ctx if ev is not None else None
        if info is None and ctx and "sock_hist" in ctx:
            info = from_history(ctx, None, num)
            if info is not None:
                th.fds[num] = info
        info = info or self.lookup(th, num)
        if info is None:
            info = FdInfo(num=num, type="ipv4", sockfamily="ip")
            th.fds[num] = info
        return info

    def _connect(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        num = as_int(ev.args.get("fd"))
        if ev.ctx is not None and "lip" in ev.ctx and num is not None and num >= 0 \
                and num not in th.fds:
            # the kernel socket gives every fact: no /proc read (its name would make
            # fd.name_changed depend on whether the socket's creation was seen)
            th.fds[num] = FdInfo(num=num, type="ipv4", sockfamily="ip")
        info = self._sock(th, num)
        if info is None:
            return None
        res = ev.res or 0
        self._addresses(ev, info, server=False)
        info.connected = res == 0 or res == -EINPROGRESS
        return info

    def _addresses(self, ev: Event, info: FdInfo, *, server: bool) -> None:
        a = ev.args
        ctx = ev.ctx
        if ctx is not None and "lip" in ctx:
            # the kernel socket's own ends (detector.sources.ebpf CTX_KEYS); per connect and
            # accept, so the usual types (str, int) are taken as they are
            g = ctx.get
            fam = g("sock_family")
            if fam:
                info.type = fam if type(fam) is str else str(fam)
            l4 = g("l4proto")
            info.l4proto = l4 if type(l4) is str and l4 else as_str(l4) or info.l4proto
            lip, lport, rip, rport = ctx["lip"], g("lport"), ctx["rip"], g("rport")
            set_ends(info, (lip if type(lip) is str else str(lip),
                            lport if type(lport) is int else 0),
                     (rip if type(rip) is str else str(rip),
                      rport if type(rport) is int else 0), server=server)  # fmt: skip
            return
        local = remote = None
        tup = a.get("tuple")
        if isinstance(tup, str | bytes):
            pair = parse_tuple(as_str(tup) or "")
            if pair is not None:
                # Falco's tuple is source->destination: for connect the source is local.
                local, remote = (pair[1], pair[0]) if server else pair
        if remote is None:
            addr = parse_endpoint(a.get("addr") if a.get("addr") is not None else tup)
            if isinstance(addr, str):
                info.type, info.sockfamily = "unix", "unix"
                info.name_changed = info.name != addr
                info.name = addr
                return
            remote = addr
            if ev.ctx is not None:
                loc = parse_endpoint(ev.ctx.get("local"))
                local = loc if isinstance(loc, tuple) else None
        if remote is not None:
            set_ends(info, local, remote, server=server)

    def _accept(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        res = ev.res if ev.res is not None else as_int(ev.args.get("fd"))
        if res is None or res < 0:
            return None
        lfd = as_int(ev.args.get("listen_fd"))
        listening = th.fds.get(lfd) if lfd is not None else None
        info = FdInfo(
            num=res,
            type=listening.type if listening is not None else "ipv4",
            sockfamily=listening.sockfamily if listening is not None else "ip",
            l4proto=listening.l4proto if listening is not None else "tcp",
            connected=True,
        )
        self._addresses(ev, info, server=True)
        if listening is not None and info.sip is None and listening.lip is not None:
            info.name = listening.name
        th.fds[res] = info
        return info

    def _bind(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        info = self._sock(th, as_int(ev.args.get("fd")), ev)
        if info is None or (ev.res is not None and ev.res != 0):
            return info
        addr = parse_endpoint(ev.args.get("addr"))
        if isinstance(addr, tuple):
            info.lip, info.lport = addr
            info.sip, info.sport = addr
            info.name = f"{addr[0]}:{addr[1]}"
            if ":" in addr[0]:
                info.type = "ipv6"
        elif isinstance(addr, str):
            info.type, info.sockfamily, info.name = "unix", "unix", addr
        return info

    def _listen(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        info = self._sock(th, as_int(ev.args.get("fd")), ev)
        if info is not None and (ev.res is None or ev.res == 0):
            info.is_server = True
        return info

    def _close(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        num = ev.args.get("fd")
        if type(num) is not int:
            return None
        res = ev.res
        if res is None or res == 0:
            return th.fds.pop(num, None)
        return th.fds.get(num)

    def _dup_source(self, ev: Event, th: ThreadInfo, num: int) -> FdInfo | None:
        """The entry a dup-family event copies: built from the socket history its record
        carries (the kernel dropped the socket's creating events), else the table's, else
        /proc's."""
        ctx = ev.ctx
        src = from_history(ctx, th.fds.get(num), num) if ctx and "sock_hist" in ctx else None
        return src or th.fds.get(num) or self.lookup(th, num)

    def _dup(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        a = ev.args
        old = as_int(a.get("oldfd"))
        if old is None:
            old = as_int(a.get("fd"))
        new = ev.res
        if old is None or new is None or new < 0:
            return None
        src = self._dup_source(ev, th, old)
        if src is None:
            if new != old:  # the new fd names what old does, which nobody tracks: not its past
                th.fds.pop(new, None)
            return None
        flags = src.open_flags & ~O_CLOEXEC
        if ev.type == "dup3" and (as_int(a.get("flags")) or 0) & O_CLOEXEC:
            flags |= O_CLOEXEC
        if new != old:
            self._clone_fd(th, src, new, flags)
        return src

    def _fcntl(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        num = _int(ev.args.get("fd"))
        cmd = _int(ev.args.get("cmd"))
        if num is None:
            return None
        src = self._dup_source(ev, th, num)
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC) and src is not None and ev.res is not None \
                and ev.res >= 0:
            flags = (src.open_flags & ~O_CLOEXEC) | (O_CLOEXEC if cmd == F_DUPFD_CLOEXEC else 0)
            self._clone_fd(th, src, ev.res, flags)
        return src

    @staticmethod
    def _clone_fd(th: ThreadInfo, src: FdInfo, new: int, flags: int) -> FdInfo:
        copy = FdInfo(
            num=new, type=src.type, name=src.name, nameraw=src.nameraw, open_flags=flags,
            dev=src.dev, ino=src.ino, l4proto=src.l4proto, cip=src.cip, cport=src.cport,
            sip=src.sip, sport=src.sport, lip=src.lip, lport=src.lport, rip=src.rip,
            rport=src.rport, is_server=src.is_server, connected=src.connected,
            sockfamily=src.sockfamily,
        )
        th.fds[new] = copy
        return copy

    def _pipe(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        if ev.res is not None and ev.res != 0:
            return None
        first = None
        for key in ("fd1", "fd2"):
            num = as_int(ev.args.get(key))
            if num is not None and num >= 0:
                th.fds[num] = FdInfo(num=num, type="pipe", ino=as_int(ev.args.get("ino")))
                first = first or th.fds[num]
        return first

    def _memfd(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        res = ev.res
        if res is None or res < 0:
            return None
        name = "memfd:" + (as_str(ev.args.get("name")) or "")
        info = FdInfo(num=res, type="memfd", name=name, nameraw=name,
                      open_flags=as_int(ev.args.get("flags")) or 0)
        th.fds[res] = info
        return info

    def _simple(self, ev: Event, th: ThreadInfo) -> FdInfo | None:
        res = ev.res
        if res is None or res < 0:
            return None
        info = FdInfo(num=res, type=_SIMPLE_TYPES[ev.type])
        th.fds[res] = info
        return info
