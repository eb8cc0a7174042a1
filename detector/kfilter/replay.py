"""The kernel filter applied in Python to recorded events: what the kernel would have kept.

Used to prove the filters sound: the same raw events (as the eBPF source decodes them, before
the state tracker) go through the tracker and the rules once whole and once filtered by
:func:`filtered`, and must raise the same alerts. ``is_dir`` is read from the file system
(the kernel reads the opened file's inode), so recordings are replayed where they were made.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from detector.events import Event
from detector.kfilter.plan import UBUF_FDS, Facts, KernelPlan, Marks, event_flags
from detector.sources.syscalls import FD_EVENTS

EXECS = frozenset({"execve", "execveat"})


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
    elif ev.type in FD_EVENTS:
        made = (res,)
    fd = a.get("fd")
    return Facts(ev.type, res, flags, name, is_dir,
                 fd_arg=fd if ev.type == "close" and isinstance(fd, int) else -1,
                 fds_made=made)  # fmt: skip


def filtered(plan: KernelPlan, events: Iterable[Event]) -> Iterator[Event]:
    """The events the kernel would deliver under ``plan`` (its marks included)."""
    marks = Marks()
    for ev in events:
        got = ev.ctx.get("pid") if ev.ctx else None
        pid = got if isinstance(got, int) else ev.tid
        if marks.keep(plan, facts_of(ev), pid):
            yield ev
        if (ev.type in EXECS and (ev.res or 0) == 0) or (ev.type == "procexit" and ev.tid == pid):
            marks.process_gone(pid)
