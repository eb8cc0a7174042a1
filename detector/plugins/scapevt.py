"""Syscall events as libscap event records, the ``ss_plugin_event`` bytes native plugins read.

A record is the scap header (``ts, tid, len, type, nparams``, 26 bytes packed), the parameter
lengths (u16 each: no syscall event is a large-payload one), then each parameter in libscap's
encoding for its type (libs ``driver/event_table.c``; see :mod:`detector.plugins.scapcodes`):
integers little-endian at their width (``PT_FD``, ``PT_PID``, ``PT_ERRNO`` as s64), strings
nul-terminated, ``PT_BYTEBUF`` raw (``args``/``env`` as nul-terminated strings back to back),
``PT_SOCKADDR``/``PT_SOCKTUPLE`` as a PPM family byte then addresses and host-order ports.
A value the detector does not have is an empty parameter (length 0), as libs writes one.
Flags take libs' bits (``PPM_O_*``, ``PPM_CL_*``), not the kernel's.

:func:`scap_record` encodes one event once: the last event's bytes are kept, so every plugin's
parse and extraction of the same event share them.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

from detector.events import Event
from detector.plugins.scapcodes import (
    CLONE_FLAG_BITS,
    CLONE_NEWPID,
    EXIT_CODES,
    FD_FLAG_BITS,
    GENERIC_X,
    O_ACCMODE,
    O_CREAT,
    O_RDWR,
    O_TMPFILE,
    O_WRONLY,
    OPEN_FLAG_BITS,
    PPM_CL_CHILD_IN_PIDNS,
    PPM_O_RDONLY,
    PPM_O_RDWR,
    PPM_O_WRONLY,
    PROCEXIT,
    PROCEXIT_PARAMS,
)
from detector.rules.fields.eventtable import EXIT_PARAMS
from falcoctl_py.bounded import is_digits

HEADER = struct.Struct("<QQIHI")
MAX_PARAM = 0xFFFF  # a u16 length: longer values are cut, as the drivers cut them
PPM_AF_UNIX, PPM_AF_INET, PPM_AF_INET6 = 1, 2, 10
Encoder = Callable[[object], bytes | None]
Getter = Callable[[Event], object]


def _int(width: int) -> Encoder:
    mask = (1 << (8 * width)) - 1

    def enc(value: object) -> bytes | None:
        if not isinstance(value, int):
            return None
        return (value & mask).to_bytes(width, "little")
    return enc


def _text(value: object) -> bytes:
    """Bytes as they are; text back to the kernel's bytes (undecodable ones were escaped)."""
    if isinstance(value, bytes):
        return value
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no decoder escaped (a replayed capture)
        return text.encode("utf-8", "replace")


def _charbuf(value: object) -> bytes | None:
    if value is None:
        return None
    raw = _text(value).split(b"\0", 1)[0][:MAX_PARAM - 1]
    return raw + b"\0"


def _bytebuf(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):  # argv, env: each string nul-terminated
        raw = b"".join(_text(item) + b"\0" for item in value)
    else:
        raw = _text(value)
    return raw[:MAX_PARAM]


def _endpoint(text: str) -> tuple[int, bytes, int] | None:
    """``ip:port`` (IPv6 without brackets too) as (PPM family, packed address, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not is_digits(port):
        return None
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    family = PPM_AF_INET if ip.version == 4 else PPM_AF_INET6
    return family, ip.packed, int(port) & 0xFFFF


def _sockaddr(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    end = _endpoint(value)
    if end is None:  # a unix socket's path (``@name`` for an abstract one)
        path = b"\0" + _text(value[1:]) if value.startswith("@") else _text(value)
        return bytes([PPM_AF_UNIX]) + path[:MAX_PARAM - 2] + b"\0"
    family, addr, port = end
    return bytes([family]) + addr + port.to_bytes(2, "little")


def _socktuple(value: object) -> bytes | None:
    """``client->server`` text: family, source address and port, destination address and port;
    a unix path: family, two (unknown, zero) socket pointers, the path."""
    if not isinstance(value, str):
        return None
    src, arrow, dst = value.partition("->")
    a, b = _endpoint(src), _endpoint(dst)
    if arrow and a is not None and b is not None and a[0] == b[0]:
        return (bytes([a[0]]) + a[1] + a[2].to_bytes(2, "little") + b[1]
                + b[2].to_bytes(2, "little"))
    path = _text(dst if arrow else value)
    return bytes([PPM_AF_UNIX]) + bytes(16) + path[:MAX_PARAM - 18] + b"\0"


INT_WIDTHS: dict[str, int] = {
    **dict.fromkeys(("INT8", "UINT8", "FLAGS8", "ENUMFLAGS8", "SIGTYPE", "L4PROTO",
                     "SOCKFAMILY"), 1),
    **dict.fromkeys(("INT16", "UINT16", "FLAGS16", "ENUMFLAGS16", "PORT", "SYSCALLID"), 2),
    **dict.fromkeys(("INT32", "UINT32", "FLAGS32", "ENUMFLAGS32", "MODE", "UID", "GID",
                     "SIGSET", "BOOL", "FD32", "PID32", "IPV4ADDR"), 4),
    **dict.fromkeys(("INT64", "UINT64", "ERRNO", "FD", "PID", "ABSTIME", "RELTIME"), 8),
}  # fmt: skip
ENCODERS: dict[str, Encoder] = {
    **{ptype: _int(width) for ptype, width in INT_WIDTHS.items()},
    **dict.fromkeys(("CHARBUF", "FSPATH", "FSRELPATH"), _charbuf),
    "BYTEBUF": _bytebuf, "SOCKADDR": _sockaddr, "SOCKTUPLE": _socktuple,
}  # fmt: skip
# Not encoded (always empty): DYN, FDLIST, CHARBUFARRAY, CHARBUF_PAIR_ARRAY, DOUBLE, IP nets.


def open_flags(flags: int) -> int:
    """Kernel open flags as libs' ``PPM_O_*`` bits (``open_flags_to_scap``)."""
    acc = flags & O_ACCMODE
    res = PPM_O_WRONLY if acc == O_WRONLY else PPM_O_RDWR if acc == O_RDWR else PPM_O_RDONLY
    for kernel, ppm in OPEN_FLAG_BITS:
        if flags & kernel:
            res |= ppm
    return res


def _bits(table: tuple[tuple[int, int], ...]) -> Callable[[int], int]:
    def convert(flags: int) -> int:
        return sum(ppm for kernel, ppm in table if flags & kernel)
    return convert


clone_flags = _bits(CLONE_FLAG_BITS)
fd_flags = _bits(FD_FLAG_BITS)
OPEN_TYPES = frozenset({"open", "openat", "openat2"})
CLONE_TYPES = frozenset({"clone", "clone3", "fork", "vfork"})
PROC_TYPES = CLONE_TYPES | {"execve", "execveat"}


def _thread(attr: str) -> Getter:
    def get(ev: Event) -> object:
        return getattr(ev.thread, attr) if ev.thread is not None else None
    return get


def _fd(attr: str) -> Getter:
    def get(ev: Event) -> object:
        return getattr(ev.fd, attr) if ev.fd is not None else None
    return get


def _unix_name(ev: Event) -> object:
    fd = ev.fd
    return fd.name if fd is not None and fd.type == "unix" else None


CGROUP_SUBSYS = ("cpuset", "cpu", "cpuacct", "io", "memory")  # libs' order in ``cgroups``


def _cgroups(ev: Event) -> object:
    """``subsys=path`` entries, each nul-terminated, from the source's cgroup v2 path (its
    ``0::/...`` context key, absent in the root cgroup); None without kernel context."""
    ctx = ev.ctx
    if ctx is None:
        return None
    text = ctx.get("cgroup")
    path = text.split("::", 1)[1] if isinstance(text, str) and "::" in text else "/"
    return [f"{subsys}={path}" for subsys in CGROUP_SUBSYS]


# Values the sources leave to the state tracker (libs' drivers read them from the task).
PROC_FALLBACKS: dict[str, Getter] = {
    "cwd": _thread("cwd"), "comm": _thread("comm"), "pid": _thread("pid"),
    "tid": _thread("tid"), "ptid": _thread("ppid"), "uid": _thread("uid"),
    "gid": _thread("gid"), "vpgid": _thread("vpgid"), "tty": _thread("tty"),
    "loginuid": _thread("loginuid"), "vtid": _thread("vtid"), "vpid": _thread("vpid"),
    "env": _thread("env"), "trusted_exepath": _thread("exepath"), "cgroups": _cgroups,
}  # fmt: skip
CLONE_FALLBACKS: dict[str, Getter] = {"exe": _thread("exe"), "args": _thread("args")}
FD_FALLBACKS: dict[str, Getter] = {"dev": _fd("dev"), "ino": _fd("ino"), "tuple": _unix_name}


def _fallback(etype: str, name: str) -> Getter | None:
    if etype in CLONE_TYPES and name in CLONE_FALLBACKS:
        return CLONE_FALLBACKS[name]
    if etype in PROC_TYPES:
        return PROC_FALLBACKS.get(name)
    return FD_FALLBACKS.get(name)


def _clone_exit_flags(ev: Event, flags: int) -> int:
    """``PPM_CL_*``, plus ``PPM_CL_CHILD_IN_PIDNS`` as libs' drivers add it: the thread is in a
    pid namespace (its ``vtid`` is not its ``tid``) or the child gets a new one."""
    res = clone_flags(flags)
    vtid, tid = ev.args.get("vtid"), ev.args.get("tid")
    if flags & CLONE_NEWPID or (isinstance(vtid, int) and isinstance(tid, int) and vtid != tid):
        res |= PPM_CL_CHILD_IN_PIDNS
    return res


def _converter(etype: str, name: str, table: str) -> Callable[[Event, int], int] | None:
    """libs' value for a flags (or open mode) parameter the detector keeps as the kernel's."""
    if table == "clone_flags" and etype in CLONE_TYPES:
        return _clone_exit_flags
    if table == "clone_flags":
        return lambda ev, v: clone_flags(v)
    if table == "file_flags" and etype in OPEN_TYPES:
        return lambda ev, v: open_flags(v)
    if table == "file_flags":
        return lambda ev, v: fd_flags(v)
    if name == "mode" and etype in OPEN_TYPES | {"creat"}:  # libs ``open_modes_to_scap``
        def mode(ev: Event, v: int) -> int:
            flags = ev.args.get("flags")
            created = isinstance(flags, int) and flags & (O_CREAT | O_TMPFILE)
            return v & 0o7777 if created else 0
        return mode
    return None


Param = Callable[[Event], bytes]
Plan = tuple[int, struct.Struct, tuple[Param, ...]]
_PLANS: dict[str, Plan] = {}


def _empty(ev: Event) -> bytes:
    return b""


def _param(etype: str, name: str, ptype: str, table: str) -> Param:
    """One parameter's bytes for an event (b"" when there is no value), in one closure call
    plus its fallback and conversion when it has them."""
    enc = ENCODERS.get(ptype)
    if enc is None:
        return _empty
    fallback, convert = _fallback(etype, name), _converter(etype, name, table)
    width = INT_WIDTHS.get(ptype)
    if width is None:
        def other(ev: Event) -> bytes:
            v = ev.args.get(name)
            if v is None and fallback is not None:
                v = fallback(ev)
            return b"" if v is None else enc(v) or b""
        return other
    mask = (1 << (8 * width)) - 1
    if convert is None and fallback is None:
        def integer(ev: Event) -> bytes:
            v = ev.args.get(name)
            return (v & mask).to_bytes(width, "little") if isinstance(v, int) else b""
        return integer

    def converted(ev: Event) -> bytes:
        v = ev.args.get(name)
        if v is None and fallback is not None:
            v = fallback(ev)
        if not isinstance(v, int):
            return b""
        if convert is not None:
            v = convert(ev, v)
        return (v & mask).to_bytes(width, "little")
    return converted


def plan(etype: str) -> Plan:
    """An event type's code, lengths layout and parameter readers (built once per type)."""
    found = _PLANS.get(etype)
    if found is not None:
        return found
    if etype == "procexit":
        code, params = PROCEXIT, PROCEXIT_PARAMS
    elif etype in EXIT_CODES:
        code, params = EXIT_CODES[etype], EXIT_PARAMS[etype]
    else:  # a syscall with no event of its own: a header (libs' generic event), no parameters
        code, params = GENERIC_X, ()
    built = _PLANS[etype] = (code, struct.Struct(f"<{len(params)}H"),
                             tuple(_param(etype, *p) for p in params))
    return built


def encode(ev: Event) -> bytes:
    """The libscap record of one syscall event."""
    code, lens, params = plan(ev.type)
    values = [p(ev) for p in params]
    body = b"".join(values)
    total = HEADER.size + lens.size + len(body)
    head = HEADER.pack(ev.ts, ev.tid & 0xFFFFFFFFFFFFFFFF, total, code, len(values))
    return head + lens.pack(*map(len, values)) + body


_LAST: list[tuple[Event | None, bytes]] = [(None, b"")]


def scap_record(ev: Event) -> bytes:
    """:func:`encode`, once per event: parse and every extractor reuse the last event's bytes."""
    last = _LAST[0]
    if last[0] is ev:
        return last[1]
    raw = encode(ev)
    _LAST[0] = (ev, raw)
    return raw
