"""Capture files: events recorded with the state they need, replayed deterministically.

Format (version 1; see docs/capture-format.md): JSON Lines, UTF-8, optionally gzip-compressed
when the file name ends in ``.gz``. Every line is one JSON object whose ``k`` key gives its kind:

* ``{"k": "h", "format": "falcoctl-py-capture", "version": 1, "created": NS, "source": S}``:
  the header, always the first line.
* ``{"k": "c", "id": ..., "full_id": ..., "type": ..., "name": ..., ...}``: a container
  (every :class:`~detector.events.ContainerInfo` field). Written before the first thread that
  runs in it, and again when its metadata arrives; a later record replaces the earlier one.
* ``{"k": "t", "tid": ..., "pid": ..., "parent": TID or null, "container": ID, "user": {...},
  ...}``: a thread snapshot (every :class:`~detector.events.ThreadInfo` field except ``fds``;
  ``parent`` and ``container`` are references to records written before). Written before the
  first event of the thread and again whenever its state changed (exec, chdir, setuid...).
* ``{"k": "e", "num": ..., "ts": ..., "type": ..., "tid": ..., "res": ..., "args": {...},
  "fd": {...} or absent}``: an event; its thread is the last snapshot of ``tid``, its fd is
  inline (the :class:`~detector.events.FdInfo` fields that differ from the defaults).

Values: JSON numbers, strings, lists and objects; ``bytes`` are ``{"$b": BASE64}``. Readers
ignore keys they do not know and records of unknown kinds (forward compatibility); a newer
major ``version`` is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import time
from typing import IO, Any

from detector.events import ContainerInfo, Event, FdInfo, GroupInfo, ThreadInfo, UserInfo

FORMAT = "falcoctl-py-capture"
VERSION = 1

_FD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FdInfo)}
_CONTAINER_FIELDS = [f.name for f in dataclasses.fields(ContainerInfo)]
_THREAD_FIELDS = [
    f.name for f in dataclasses.fields(ThreadInfo)
    if f.name not in ("parent", "fds", "container", "user", "loginuser", "group")
]


def encode_value(v: Any) -> Any:
    """A JSON-safe form of an event value (``bytes`` become ``{"$b": base64}``)."""
    if isinstance(v, bytes):
        return {"$b": base64.b64encode(v).decode("ascii")}
    if isinstance(v, list | tuple):
        return [encode_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): encode_value(x) for k, x in v.items()}
    if v is None or isinstance(v, int | float | str):
        return v
    return str(v)  # anything else a source may carry is kept as its text


def decode_value(v: Any) -> Any:
    """The inverse of :func:`encode_value`."""
    if isinstance(v, dict):
        if len(v) == 1 and "$b" in v:
            return base64.b64decode(v["$b"])
        return {k: decode_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    return v


def open_text(path: str, mode: str) -> IO[str]:
    """A capture file opened as text, through gzip when the name ends in ``.gz``."""
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.GzipFile(path, mode + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _user(u: UserInfo | None) -> dict[str, Any] | None:
    return None if u is None else dataclasses.asdict(u)


class CaptureWriter:
    """Writes fully-stated events (``thread`` and ``fd`` attached) to a capture file."""

    def __init__(self, path: str, *, source: str = "syscall") -> None:
        self.path = path
        self._f = open_text(path, "w")
        self._threads: dict[int, tuple[Any, ...]] = {}
        self._containers: dict[str, tuple[Any, ...]] = {}
        self.events = 0
        self._line({"k": "h", "format": FORMAT, "version": VERSION, "created": time.time_ns(),
                    "source": source})

    def _line(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")

    def _container(self, c: ContainerInfo) -> None:
        key = (c.name, c.image, c.privileged, len(c.labels))
        if self._containers.get(c.id) == key:
            return
        self._containers[c.id] = key
        rec = {"k": "c", **{n: encode_value(getattr(c, n)) for n in _CONTAINER_FIELDS}}
        self._line(rec)

    def _thread(self, th: ThreadInfo, depth: int = 0) -> None:
        parent = th.parent
        key = (id(th), th.comm, th.exe, th.exec_ts, th.cwd, th.uid, th.gid, th.loginuid,
               th.tty, id(th.container), th.container.name, id(parent), th.ppid,
               parent.exec_ts if parent is not None else 0)
        if self._threads.get(th.tid) == key:
            return
        if len(self._threads) > 262144:
            self._threads.clear()  # bounded: long captures just repeat a few snapshots
        self._threads[th.tid] = key
        if parent is not None and depth < 64:
            self._thread(parent, depth + 1)
        self._container(th.container)
        rec: dict[str, Any] = {"k": "t"}
        for name in _THREAD_FIELDS:
            rec[name] = encode_value(getattr(th, name))
        rec["parent"] = parent.tid if parent is not None else None
        rec["container"] = th.container.id
        rec["user"] = _user(th.user)
        rec["loginuser"] = _user(th.loginuser)
        rec["group"] = None if th.group is None else dataclasses.asdict(th.group)
        self._line(rec)

    def write(self, ev: Event) -> None:
        """Record one event (after the state tracker filled it)."""
        if ev.thread is not None:
            self._thread(ev.thread)
        rec: dict[str, Any] = {"k": "e", "num": ev.num, "ts": ev.ts, "type": ev.type,
                               "tid": ev.tid, "res": ev.res, "args": encode_value(ev.args)}
        if ev.dir != "<":
            rec["dir"] = ev.dir
        if ev.cpu:
            rec["cpu"] = ev.cpu
        if ev.source != "syscall":
            rec["source"] = ev.source
        if ev.plugin_data is not None:
            rec["plugin_data"] = encode_value(ev.plugin_data)
        if ev.thread is None:
            rec["nothread"] = True
        if ev.fd is not None:
            fd = ev.fd
            rec["fd"] = {n: v for n, d in _FD_DEFAULTS.items()
                         if (v := getattr(fd, n)) != d or n == "num"}
        self._line(rec)
        self.events += 1

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        """Finish the file."""
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def thread_from_record(rec: dict[str, Any]) -> ThreadInfo:
    """A ThreadInfo from a ``t`` record (``parent`` and ``container`` left for the caller)."""
    th = ThreadInfo(tid=int(rec["tid"]), pid=int(rec["pid"]))
    update_thread(th, rec)
    return th


def update_thread(th: ThreadInfo, rec: dict[str, Any]) -> None:
    """Set ``th``'s fields from a ``t`` record, in place."""
    for name in _THREAD_FIELDS:
        if name in rec:
            setattr(th, name, decode_value(rec[name]))
    th.user = UserInfo(**rec["user"]) if rec.get("user") else None
    th.loginuser = UserInfo(**rec["loginuser"]) if rec.get("loginuser") else None
    th.group = GroupInfo(**rec["group"]) if rec.get("group") else None


def update_container(c: ContainerInfo, rec: dict[str, Any]) -> None:
    """Set ``c``'s fields from a ``c`` record, in place."""
    for name in _CONTAINER_FIELDS:
        if name in rec:
            value = decode_value(rec[name])
            if name == "mounts":
                value = [tuple(m) for m in value]
            setattr(c, name, value)


def fd_from_record(rec: dict[str, Any]) -> FdInfo:
    """An FdInfo from an event's inline ``fd`` object."""
    known = {k: v for k, v in rec.items() if k in _FD_DEFAULTS}
    return FdInfo(**known)
