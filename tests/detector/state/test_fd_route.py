"""The tracker's per-type route: the second and later events of a type take the same path as
the first, and thread-changing types (chdir, exec, clone, exit) never take the plain one."""

from __future__ import annotations

import os
from dataclasses import fields

from detector.events import Event, FdInfo
from detector.state.tracker import StateTracker

# fds.FdTracker._open builds FdInfo positionally from these, in this order
OPEN_FIELDS = ["num", "type", "name", "nameraw", "open_flags", "dev", "ino"]


def _tracker() -> tuple[StateTracker, int]:
    t = StateTracker(fetch_containers=False)
    t.scan()
    return t, os.getpid()


def _ev(n: int, tid: int, etype: str, res: int | None = 0, **args: object) -> Event:
    return Event(num=n, ts=n, type=etype, tid=tid, res=res, args=dict(args))


def test_fdinfo_keeps_the_order_the_open_handler_relies_on() -> None:
    assert [f.name for f in fields(FdInfo)][: len(OPEN_FIELDS)] == OPEN_FIELDS


def test_open_read_close_give_the_same_fds_on_every_event_of_their_type() -> None:
    t, pid = _tracker()
    cwd = t.threads.threads[pid].cwd
    for i, num in enumerate((900, 901, 902)):
        op = t.process(_ev(3 * i, pid, "openat", num, dirfd=-100, name=f"sub/../f{num}",
                           flags=0o200000, dev=7, ino=num))  # fmt: skip
        assert op.fd is not None and (op.fd.num, op.fd.type, op.fd.name, op.fd.nameraw) == (
            num, "directory", os.path.join(cwd, f"f{num}"), f"sub/../f{num}")
        assert (op.fd.open_flags, op.fd.dev, op.fd.ino) == (0o200000, 7, num)
        rd = t.process(_ev(3 * i + 1, pid, "read", 10, fd=num))
        assert rd.fd is op.fd and rd.thread is op.thread
        dup = t.process(_ev(3 * i + 2, pid, "dup2", num + 50, oldfd=num, newfd=num + 50))
        assert dup.fd is op.fd and t.threads.threads[pid].fds[num + 50].name == op.fd.name
        cl = t.process(_ev(3 * i + 3, pid, "close", 0, fd=num))
        assert cl.fd is op.fd and num not in t.threads.threads[pid].fds


def test_chdir_after_many_plain_events_still_moves_the_cwd() -> None:
    t, pid = _tracker()
    for i in range(3):
        t.process(_ev(i, pid, "read", 1, fd=0))
        t.process(_ev(10 + i, pid, "chdir", 0, path=f"/tmp/d{i}"))
        assert t.threads.threads[pid].cwd == f"/tmp/d{i}"
        op = t.process(_ev(20 + i, pid, "openat", 903, dirfd=-100, name="x", flags=0))
        assert op.fd is not None and op.fd.name == f"/tmp/d{i}/x"


def test_a_failed_open_is_fd_minus_one_and_not_kept() -> None:
    t, pid = _tracker()
    for i in range(2):
        ev = t.process(_ev(i, pid, "openat", -2, dirfd=-100, name="/nope", flags=0))
        assert ev.fd is not None and ev.fd.num == -1 and ev.fd.name == "/nope"
        assert -1 not in t.threads.threads[pid].fds
