"""The eBPF source's hot loop, ring-buffer records to Events: compiled, or in pure Python.

The compiled loop (``detector/sources/_lean.c``, built by ``make install`` with the system's
gcc) walks the ring buffer and builds the simple records' Events itself (the events of
``detector/sources/argspec.py``'s table without process context, socket tuple or sockaddr:
open/openat/close/fcntl/dup..., most of what a busy node sends), the clone family and
execve/execveat (``_lean_proc.c``) and the socket events (``_lean_sock.c``); every other record
(procexit, openat2...) goes
through the pure-Python :func:`detector.sources.decode.decode`, which is also the whole loop
when the extension is not built. Both give equal Events (the tests run every decoding case
on both).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from types import ModuleType

from detector.bpf.ringbuf import RingReader
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
