"""The eBPF source's hot loop, ring-buffer records to Events: compiled, or in pure Python.

The compiled loop (``detector/sources/_lean.c``, built by ``make install`` with the system's
gcc) walks a ring buffer (``_lean_ring.c``) and builds the simple records' Events itself (the
events of ``detector/sources/argspec.py``'s table without process context, socket tuple or
sockaddr: open/openat/close/fcntl/dup..., procexit, most of what a busy node sends), the clone
family and execve/execveat (``_lean_proc.c``) and the socket events (``_lean_sock.c``); every
other record (openat2, creat, pipes...) goes through the pure-Python
:func:`detector.sources.decode.decode`,
which is also the whole loop when the extension is not built. Both give equal Events (the
tests run every decoding case on both).
"""

from __future__ import annotations

import dataclasses
import operator
import os
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any

from detector.bpf.ringbuf import RingReader
from detector.bpf.rings import RingSet, boottime_ns
from detector.errors import DetectorError
from detector.events import Event
from detector.sources import decode as py_decode
from detector.sources.argspec import SIMPLE, Param, parse
from detector.sources.layout import Buffer

Consume = Callable[[RingReader, int, int, int], list[Event]]
DECODERS = ("auto", "compiled", "python")
ENV_PURE = "FALCOCTL_PY_PURE_DECODE"  # set to 1: the pure-Python loop even when compiled


def simple_table() -> dict[int, tuple[str, tuple[Param, ...]]]:
    """Syscall number -> (event name, parameters) for what the compiled loop decodes itself."""
    return {nr: (name, parse(SIMPLE[name]))
            for nr, (name, _) in py_decode.EVENTS_BY_NR.items() if name in SIMPLE}  # fmt: skip


# Event families the compiled loop decodes in their own C files (modes as in _lean.h).
FAMILIES = {"clone": 0, "clone3": 1, "fork": 2, "vfork": 3, "execve": 4, "execveat": 5,
            "connect": 6, "bind": 7, "sendto": 8, "sendmsg": 8, "recvfrom": 8, "recvmsg": 8,
            "accept": 9, "accept4": 10}  # fmt: skip


def family_table() -> dict[int, tuple[str, int]]:
    """Syscall number -> (event name, family) for the clone family and the socket events."""
    return {nr: (name, FAMILIES[name])
            for nr, (name, _) in py_decode.EVENTS_BY_NR.items() if name in FAMILIES}  # fmt: skip


def _load() -> tuple[ModuleType | None, str]:
    try:
        from detector.sources import _lean
    except ImportError as exc:
        return None, f"not built ({exc}); run `make install` with gcc and python3-dev"
    fields = tuple(f.name for f in dataclasses.fields(Event))
    try:
        _lean.setup(Event, fields, simple_table(), family_table(), py_decode.decode)
    except (ValueError, TypeError, RuntimeError) as exc:  # Event changed since it was built
        return None, f"built but not usable ({exc}); update detector/sources/_lean.c"
    return _lean, ""


LEAN, WHY_NOT = _load()


def consume_python(reader: RingReader, limit: int, first: int, boot: int) -> list[Event]:
    """Up to ``limit`` records decoded in place (numbered from ``first``), then released."""
    places, cons_pos = reader.take(limit)
    buf = reader.buffer
    decode = py_decode.decode
    out = [decode(buf, first + i, boot, pos) for i, (pos, _) in enumerate(places)]
    reader.release(cons_pos)
    events: list[Event] = out
    return events


def consume_compiled(reader: RingReader, limit: int, first: int, boot: int) -> list[Event]:
    """:func:`consume_python`, the ring walk and the simple records in C."""
    if LEAN is None:
        raise DetectorError(f"the compiled decoder is {WHY_NOT}", hint="use decoder='python'")
    cons, prod = reader.positions()
    out, cons_pos = LEAN.consume(reader.buffer, reader.data_offset, reader.mask, cons, prod,
                                 limit, first, boot)  # fmt: skip
    reader.release(cons_pos)
    events: list[Event] = out
    return events


def decode_compiled(data: Buffer, num: int, boot_to_epoch_ns: int = 0,
                    pos: int = 0) -> Event:  # fmt: skip
    """:func:`detector.sources.decode.decode` through the compiled loop."""
    if LEAN is None:
        raise DetectorError(f"the compiled decoder is {WHY_NOT}", hint="use decoder='python'")
    ev: Event = LEAN.decode(data, num, boot_to_epoch_ns, pos)
    return ev


def consumer(decoder: str = "auto") -> tuple[str, Consume]:
    """(``compiled``|``python``, the loop) for ``decoder`` (``auto``: compiled when built,
    unless FALCOCTL_PY_PURE_DECODE=1)."""
    if decoder not in DECODERS:
        raise DetectorError(f"unknown decoder {decoder!r}",
                            hint=f"use one of {', '.join(DECODERS)}")  # fmt: skip
    if decoder == "auto":
        decoder = "python" if LEAN is None or os.environ.get(ENV_PURE) == "1" else "compiled"
    if decoder == "compiled" and LEAN is None:
        raise DetectorError(f"the compiled decoder is {WHY_NOT}",
                            hint="use decoder='python' (or 'auto')")  # fmt: skip
    return decoder, consume_compiled if decoder == "compiled" else consume_python


# -- several ring buffers (detector/bpf/rings.py): one batch in timestamp order --------------
Walk = Callable[[RingReader, int, int], tuple[list[Any], int, bool, int]]
_RETRIES = 3


def _sole(rings: RingSet) -> int | None:
    """The one ring holding records, read after T was taken (-1: none; None: several).

    Then that ring is read alone up to T, with no merge and no cut to care about: a record of
    it stamped before T has its predecessor committed before the positions were read, so not
    in an (empty) other ring, and within one ring the order is the reservation order.
    """
    found = -1
    for i, reader in enumerate(rings.readers):
        if reader.pending():
            if found >= 0:
                return None
            found = i
    return found


def _walk_all(rings: RingSet, walk: Walk, limit: int, ts_limit: int
              ) -> list[tuple[list[Any], int, int]]:  # fmt: skip
    """Per ring: (records, consumer position after them, largest ts), none released yet.

    T is taken before the producer positions are read, and only records with ``ts <= T``
    come: a thread's record with ``ts <= T`` began after its previous record was committed,
    so that one (maybe on another CPU's ring) is in this batch too. A ring cut short (a busy
    record, or ``limit``) may hold such a predecessor behind the cut, but every record there
    was reserved after every record taken before it: T drops to the largest ts taken from
    that ring (or delivered from it earlier) and the rings are walked again; after
    ``_RETRIES`` lowerings nothing comes this time.
    """
    for _ in range(_RETRIES):
        got = [walk(r, limit, ts_limit) for r in rings.readers]
        cut = [max(last, rings.last_ts[i]) for i, (recs, _, busy, last) in enumerate(got)
               if busy or len(recs) >= limit]  # fmt: skip
        lower = min(cut, default=ts_limit)
        if lower >= ts_limit:
            return [(recs, pos, last) for recs, pos, _, last in got]
        ts_limit = lower
    return []


def _release(rings: RingSet, got: list[tuple[list[Any], int, int]]) -> None:
    if not got:  # nothing taken (see _walk_all)
        return
    for i, (_, pos, last) in enumerate(got):
        _release_one(rings, i, pos, last)


def _release_one(rings: RingSet, i: int, pos: int, last: int) -> None:
    rings.readers[i].release(pos)
    rings.last_ts[i] = max(rings.last_ts[i], last)


def _walk_places(reader: RingReader, limit: int, ts_limit: int
                 ) -> tuple[list[Any], int, bool, int]:  # fmt: skip
    places, pos, busy, last = reader.walk(limit, ts_limit)
    buf, u64 = reader.buffer, _TS.unpack_from
    return [(u64(buf, p)[0], buf, p) for p, _ in places], pos, busy, last


def merge_python(rings: RingSet, limit: int, first: int, boot: int) -> list[Event]:
    """Every ring's records up to T (see ``_walk_all``), by ts, decoded in pure Python."""
    ts_limit = boottime_ns()
    sole = _sole(rings)
    if sole is not None:  # one ring with records (or none): read alone up to T
        if sole < 0:
            return []
        places, pos, _, last = rings.readers[sole].walk(limit, ts_limit)
        buf = rings.readers[sole].buffer
        out = [py_decode.decode(buf, first + i, boot, p) for i, (p, _) in enumerate(places)]
        _release_one(rings, sole, pos, last)
        return out
    got = _walk_all(rings, _walk_places, max(1, limit // len(rings.readers)), ts_limit)
    recs = [r for part, _, _ in got for r in part]
    if sum(1 for part, _, _ in got if part) > 1:
        recs.sort(key=_first)
    decode = py_decode.decode
    out = [decode(buf, first + i, boot, pos) for i, (_, buf, pos) in enumerate(recs)]
    _release(rings, got)
    return out


def merge_compiled(rings: RingSet, limit: int, first: int, boot: int) -> list[Event]:
    """:func:`merge_python` with the compiled walk: the rings are scanned (no decoding) until
    T settles, then each decodes exactly the records its last scan counted; by ts, renumbered."""
    if LEAN is None:
        raise DetectorError(f"the compiled decoder is {WHY_NOT}", hint="use decoder='python'")
    lean = LEAN

    def scan(reader: RingReader, n: int, ts_limit: int) -> tuple[list[Any], int, bool, int]:
        cons, prod = reader.positions()
        got: tuple[list[Any], int, bool, int] = lean.consume(
            reader.buffer,
            reader.data_offset,
            reader.mask,
            cons,
            prod,
            n,
            first,
            boot,
            ts_limit,
            True,
        )
        return got

    ts_limit = boottime_ns()
    sole = _sole(rings)
    if sole is not None:  # one ring with records (or none): read alone up to T, no scan
        if sole < 0:
            return []
        reader = rings.readers[sole]
        cons, prod = reader.positions()
        alone: tuple[list[Event], int, bool, int] = lean.consume(
            reader.buffer, reader.data_offset, reader.mask, cons, prod, limit, first, boot,
            ts_limit)  # fmt: skip
        _release_one(rings, sole, alone[1], alone[3])
        return alone[0]
    got = _walk_all(rings, scan, max(1, limit // len(rings.readers)), ts_limit)
    parts: list[list[Event]] = []
    for reader, (counted, _, _) in zip(rings.readers, got, strict=False):
        if counted:  # the same records again (only the kernel's later ones can differ: not taken)
            cons, prod = reader.positions()
            part: list[Event] = lean.consume(reader.buffer, reader.data_offset, reader.mask,
                                             cons, prod, len(counted), first, boot)[0]  # fmt: skip
            parts.append(part)
    out: list[Event] = parts[0] if len(parts) == 1 else []
    if len(parts) > 1:
        out = sorted((ev for part in parts for ev in part), key=_EV_TS)
        for i, ev in enumerate(out):
            ev.num = first + i
    _release(rings, got)
    return out


def merger(decoder: str) -> Callable[[RingSet, int, int, int], list[Event]]:
    """The several-rings loop of ``consumer(decoder)``'s decoder (``compiled``|``python``)."""
    return merge_compiled if decoder == "compiled" else merge_python


_TS = struct.Struct("<Q")
_first = operator.itemgetter(0)
_EV_TS = operator.attrgetter("ts")
