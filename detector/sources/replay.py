"""Replay a capture file: fully-stated events at full speed, the same ones every time.

``ReplaySource(path)`` yields :class:`~detector.events.Event` objects with ``thread`` and
``fd`` attached as they were when captured (format: :mod:`detector.sources.capture`). Threads
and containers are single objects per tid and id, updated in place by later snapshots, so a
child's ``proc.pname`` follows its parent's exec as it did live. No clock, no /proc, no
sockets: the same file gives the same events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from detector.events import ContainerInfo, Event, ThreadInfo
from detector.sources.capture import (
    FORMAT,
    VERSION,
    decode_value,
    fd_from_record,
    open_text,
    thread_from_record,
    update_container,
    update_thread,
)
from falcoctl_py.errors import LocatedError

_HINT = "record a new one with `falcoctl-py run --capture FILE`"


class ReplaySource:
    """An event source reading a capture file (``engine.kind: replay``)."""

    name = "replay"

    def __init__(self, path: str) -> None:
        self.path = path
        self.threads: dict[int, ThreadInfo] = {}
        self.containers: dict[str, ContainerInfo] = {}
        self.header: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self) -> Iterator[Event]:
        """The capture's events, in order."""
        try:
            f = open_text(self.path, "r")
        except OSError as exc:
            raise LocatedError(f"cannot open capture: {exc.strerror}", path=self.path,
                               hint="check the path given to the replay engine") from exc
        with f:
            lineno = 0
            try:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise LocatedError(f"not a JSON record ({exc.msg})", path=self.path,
                                           line=lineno, hint=_HINT) from exc
                    if not isinstance(rec, dict):
                        raise LocatedError("a record must be a JSON object", path=self.path,
                                           line=lineno, hint=_HINT)
                    if lineno == 1:
                        self._header(rec)
                        continue
                    ev = self._record(rec, lineno)
                    if ev is not None:
                        yield ev
            except (OSError, EOFError) as exc:
                raise LocatedError(f"cannot read capture: {exc}", path=self.path,
                                   line=lineno, hint=_HINT) from exc
            if lineno == 0:
                raise LocatedError("empty capture file", path=self.path, hint=_HINT)

    def _header(self, rec: dict[str, Any]) -> None:
        if rec.get("k") != "h" or rec.get("format") != FORMAT:
            raise LocatedError(f"not a {FORMAT} file (no header)", path=self.path, line=1,
                               hint=_HINT)
        version = rec.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise LocatedError(f"capture format version {version!r} is newer than {VERSION}",
                               path=self.path, line=1, hint="upgrade falcoctl-py")
        self.header = rec

    def _record(self, rec: dict[str, Any], lineno: int) -> Event | None:
        kind = rec.get("k")
        try:
            if kind == "e":
                tid = int(rec.get("tid", 0))
                fd = rec.get("fd")
                return Event(
                    num=int(rec["num"]), ts=int(rec["ts"]), type=str(rec["type"]), tid=tid,
                    dir=str(rec.get("dir", "<")), cpu=int(rec.get("cpu", 0)), res=rec.get("res"),
                    args=decode_value(rec.get("args") or {}),
                    thread=None if rec.get("nothread") else self.threads.get(tid),
                    fd=fd_from_record(fd) if isinstance(fd, dict) else None,
                    source=str(rec.get("source", "syscall")),
                    plugin_data=decode_value(rec["plugin_data"]) if "plugin_data" in rec
                    else None,
                )
            if kind == "t":
                self._thread(rec)
            elif kind == "c":
                cid = str(rec["id"])
                c = self.containers.get(cid)
                if c is None:
                    c = self.containers[cid] = ContainerInfo(id=cid)
                update_container(c, rec)
        except (KeyError, TypeError, ValueError) as exc:
            raise LocatedError(f"bad {kind!r} record: {exc!r}", path=self.path, line=lineno,
                               hint=_HINT) from exc
        return None

    def _thread(self, rec: dict[str, Any]) -> None:
        tid = int(rec["tid"])
        th = self.threads.get(tid)
        if th is None:
            th = self.threads[tid] = thread_from_record(rec)
        else:
            update_thread(th, rec)
        parent = rec.get("parent")
        th.parent = self.threads.get(parent) if isinstance(parent, int) else None
        cid = str(rec.get("container", "host"))
        c = self.containers.get(cid)
        if c is None:
            c = self.containers[cid] = ContainerInfo(id=cid, full_id=cid, type="host",
                                                     name="host" if cid == "host" else None)
        th.container = c
