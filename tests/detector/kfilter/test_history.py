"""The history of dropped TCP sockets (replay.py ``History``, state/sockets.py
``from_history``): whatever subset of a socket's socket/connect/accept events the kernel drops,
each dup (dup2, fcntl F_DUPFD) of the socket, of a dup of it, before or after its connect,
gets the fd entry the tracker builds from every event (one process: see the README for a
fork between a socket and its connect)."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import Event, FdInfo
from detector.kfilter.replay import History
from detector.state.tracker import StateTracker

SOCKET_EVENTS = ("socket", "connect", "accept4")
ENDS = st.tuples(st.sampled_from(["127.0.0.1", "10.0.0.2", "::1"]), st.integers(1, 65535),
                 st.sampled_from(["127.0.0.1", "8.8.8.8", "::1"]), st.integers(1, 65535))


def _ctx(ino: int, fam: str, ends: tuple[str, int, str, int] | None) -> dict[str, object]:
    lip, lport, rip, rport = ends or (("::", 0, "::", 0) if fam == "ipv6" else
                                      ("0.0.0.0", 0, "0.0.0.0", 0))  # fmt: skip
    return {"pid": 7, "tid": 7, "sock_family": fam, "l4proto": "tcp", "lip": lip,
            "lport": lport, "rip": rip, "rport": rport, "sock_ino": ino}  # fmt: skip


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[Event, bool]]:
    """Events of a few TCP sockets, each socket event with whether the kernel drops it."""
    out: list[tuple[Event, bool]] = []
    fds: dict[int, tuple[int, str]] = {}  # fd -> (inode, family)
    connected: set[int] = set()  # one connect a socket (a second one: see the README)
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["socket", "connect", "accept4", "dup2", "dup2", "fcntl"]))
        ends = draw(ENDS)
        fam = "ipv6" if ":" in ends[0] else "ipv4"
        ends = (ends[0], ends[1], ends[2] if fam == "ipv6" else ends[2].replace("::1",
                "127.0.0.1"), ends[3]) if fam == "ipv4" else (ends[0], ends[1], "::1", ends[3])
        drop = draw(st.booleans())
        if kind in ("socket", "accept4") or not fds:
            fd, ino = 3 + len(fds), 100 + i
            fds[fd] = (ino, fam)
            if kind == "accept4":
                connected.add(ino)  # no connect on an accepted socket (EISCONN)
                ev = Event(num=i, ts=i, type="accept4", tid=7, res=fd, args={"fd": fd},
                           ctx=_ctx(ino, fam, ends))  # fmt: skip
            else:
                dom = socket.AF_INET6 if fam == "ipv6" else socket.AF_INET
                ev = Event(num=i, ts=i, type="socket", tid=7, res=fd,
                           args={"fd": fd, "domain": dom, "type": socket.SOCK_STREAM,
                                 "proto": 0}, ctx=_ctx(ino, fam, None))  # fmt: skip
        else:
            fd = draw(st.sampled_from(sorted(fds)))
            ino, fam = fds[fd]
            if kind == "connect" and ino not in connected:
                connected.add(ino)
                ends = (("::1", ends[1], "::1", ends[3]) if fam == "ipv6" else
                        (ends[0].replace("::1", "127.0.0.1"), ends[1], "127.0.0.1", ends[3]))
                res = draw(st.sampled_from([0, -115, -111]))
                ev = Event(num=i, ts=i, type="connect", tid=7, res=res,
                           args={"fd": fd, "res": res}, ctx=_ctx(ino, fam, ends))  # fmt: skip
            elif kind == "connect":
                continue
            else:
                new = 50 + i
                args: dict[str, object] = {"oldfd": fd, "newfd": new, "res": new} if \
                    kind == "dup2" else {
                    "fd": fd, "cmd": 1030, "res": new}  # F_DUPFD_CLOEXEC
                ev = Event(num=i, ts=i, type=kind, tid=7, res=new, args=args,
                           ctx=_ctx(ino, fam, ends))  # fmt: skip
                fds[new] = (ino, fam)
                drop = False
        out.append((ev, drop))
    return out


def _entries(events: list[Event]) -> list[FdInfo | None]:
    tracker = StateTracker(fetch_containers=False, read_proc=False)
    out = []
    for ev in events:
        ev = tracker.process(ev)
        if ev.type in ("dup2", "fcntl"):
            out.append(None if ev.fd is None else FdInfo(**{
                k: getattr(ev.fd, k) for k in FdInfo.__dataclass_fields__ if k != "open_flags"}))
    return out


@settings(max_examples=300, deadline=None)
@given(streams())
def test_dups_see_the_entry_of_every_event_whatever_the_kernel_dropped(
        stream: list[tuple[Event, bool]]) -> None:  # fmt: skip
    _same(stream)


def _same(stream: list[tuple[Event, bool]]) -> None:
    """The dups' entries are the same whole and with the dropped events' history."""
    import copy

    whole = _entries([copy.deepcopy(ev) for ev, _ in stream])
    hist, kept = History(), []
    for ev, drop in copy.deepcopy(stream):
        hist.update(ev, not drop)
        if not drop:
            kept.append(hist.carried(ev))
    assert _entries(kept) == whole


def _sock(i: int, fd: int) -> Event:
    return Event(num=i, ts=i, type="socket", tid=7, res=fd, args={
        "fd": fd, "domain": socket.AF_INET, "type": socket.SOCK_STREAM, "proto": 0},
        ctx=_ctx(100, "ipv4", None))  # fmt: skip


def _connect(i: int, fd: int) -> Event:
    return Event(num=i, ts=i, type="connect", tid=7, res=0, args={"fd": fd, "res": 0},
                 ctx=_ctx(100, "ipv4", ("127.0.0.1", 40000, "127.0.0.1", 443)))  # fmt: skip


def _dup2(i: int, old: int, new: int) -> Event:
    return Event(num=i, ts=i, type="dup2", tid=7, res=new,
                 args={"oldfd": old, "newfd": new, "res": new},
                 ctx=_ctx(100, "ipv4", ("127.0.0.1", 40000, "127.0.0.1", 443)))  # fmt: skip


def _check(stream: list[tuple[Event, bool]]) -> list[FdInfo | None]:
    _same(stream)
    return _entries([ev for ev, _ in stream])


def test_a_dup_made_before_the_connect_keeps_the_entry_of_then() -> None:
    """dup2(3, 52), connect(3), dup2(52, 58): fd 52's entry is the bare socket's (the tracker
    copies entries at dup), though the socket's history now says connected."""
    got = _check([(_sock(0, 3), True), (_dup2(1, 3, 52), False), (_connect(2, 3), True),
                  (_dup2(3, 52, 58), False), (_dup2(4, 3, 59), False)])  # fmt: skip
    assert [(f.name, f.lport) if f else None for f in got] == [
        ("", None), ("", None), ("127.0.0.1:40000->127.0.0.1:443", 40000)]


def test_a_connect_through_a_dup_leaves_the_first_fd_bare() -> None:
    """dup2(3, 52), connect(52) kept or dropped, dup2(3, 56): fd 3's entry is the bare
    socket's, fd 52's the connected one."""
    for kept in (False, True):
        got = _check([(_sock(0, 3), True), (_dup2(1, 3, 52), False), (_connect(2, 52), not kept),
                      (_dup2(3, 3, 56), False), (_dup2(4, 52, 57), False)])  # fmt: skip
        assert [(f.name, f.connected) if f else None for f in got] == [
            ("", False), ("", False), ("127.0.0.1:40000->127.0.0.1:443", True)], kept
