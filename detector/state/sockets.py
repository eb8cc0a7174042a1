"""Socket ends: addresses in event arguments, Falco's socket ``fd.name``
(``cip:cport->sip:sport``), and inet sockets found in ``/proc/PID/net/*`` by inode."""

from __future__ import annotations

import dataclasses
import socket
import struct
from collections.abc import Mapping
from typing import Any

from detector.events import FdInfo
from detector.sources.layout import (
    HIST_CLIENT,
    HIST_CLOEXEC,
    HIST_CONNECTED,
    HIST_HERE,
    HIST_SEEN,
    HIST_SERVER,
)
from detector.state import procfs
from detector.state.args import as_str


def parse_endpoint(v: Any) -> tuple[str, int] | str | None:
    """(ip, port) of an inet address, a path for a unix one, or None."""
    if isinstance(v, tuple | list) and len(v) == 2 and isinstance(v[1], int):
        return str(v[0]), v[1]
    if isinstance(v, dict):
        if v.get("path") is not None:
            return str(v["path"])
        ip = v.get("ip", v.get("addr"))
        port = v.get("port")
        if ip is not None and isinstance(port, int):
            return str(ip), port
        return None
    text = as_str(v)
    if text is None or text == "":
        return None
    if text.startswith("/") or text.startswith("@"):
        return text
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host.strip("[]"), int(port)
    return None


def parse_tuple(text: str) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """Falco's ``"sip:sport->dip:dport"`` text as ((ip, port), (ip, port))."""
    left, sep, right = text.partition("->")
    a, b = parse_endpoint(left), parse_endpoint(right)
    if sep and isinstance(a, tuple) and isinstance(b, tuple):
        return a, b
    return None


def socket_name(fd: FdInfo) -> str:
    """Falco's socket fd.name: ``cip:cport->sip:sport``."""
    if fd.sip is None:
        return fd.name
    return f"{fd.cip or '0.0.0.0'}:{fd.cport or 0}->{fd.sip}:{fd.sport or 0}"


def set_ends(fd: FdInfo, local: tuple[str, int] | None, remote: tuple[str, int], *,
             server: bool) -> None:
    """Fill both ends of an inet socket; ``server`` when this end accepted the connection."""
    lip, lport = local if local is not None else ("0.0.0.0" if fd.type != "ipv6" else "::", 0)
    rip, rport = remote
    fd.lip, fd.lport, fd.rip, fd.rport = lip, lport, rip, rport
    if server:
        fd.sip, fd.sport, fd.cip, fd.cport = lip, lport, rip, rport
    else:
        fd.cip, fd.cport, fd.sip, fd.sport = lip, lport, rip, rport
    fd.is_server = server
    if ":" in rip and fd.type not in ("ipv6",):
        fd.type = "ipv6"
    fd.sockfamily = "ip"
    new_name = socket_name(fd)
    fd.name_changed = new_name != fd.name
    fd.name = new_name


O_CLOEXEC = 0o2000000


def from_history(ctx: Mapping[str, Any], base: FdInfo | None, num: int) -> FdInfo | None:
    """The fd entry of a dup's socket whose ``socket``/``connect``/``accept`` the kernel
    dropped, built as the tracker builds it from those events (fds.py ``_socket``,
    ``_connect``, ``_accept``) on ``base`` (the table's entry, if any) from the history the
    dup's record carries (``sock_hist`` and the tuple when the last of them ran); None when
    the record carries no history, or when the dropped event was on another fd number while
    this one has an entry (a copy an earlier dup made, which that event did not change)."""
    hist = ctx.get("sock_hist")
    if type(hist) is not int or not hist & HIST_SEEN or (base is not None and not
                                                         hist & HIST_HERE):  # fmt: skip
        return None
    if not hist & HIST_HERE:  # no entry, another fd: what its socket() made, no more
        hist &= HIST_SEEN | HIST_CLOEXEC
    fam = str(ctx.get("sock_family") or "ipv4")
    if base is None:  # what socket() or accept made
        info = FdInfo(num=num, type=fam, sockfamily="ip", l4proto="tcp",
                      open_flags=O_CLOEXEC if hist & HIST_CLOEXEC else 0)  # fmt: skip
    else:  # a kept socket(), bind, listen, or the copy an earlier dup made of this socket
        info = dataclasses.replace(base, num=num, type=fam, sockfamily="ip", l4proto="tcp")
    if hist & (HIST_CLIENT | HIST_SERVER):
        lip, lport, rip, rport = ctx.get("lip"), ctx.get("lport"), ctx.get("rip"), ctx.get("rport")
        l4 = ctx.get("l4proto")
        info.l4proto = l4 if isinstance(l4, str) and l4 else info.l4proto
        set_ends(info, (str(lip), lport if isinstance(lport, int) else 0),
                 (str(rip), rport if isinstance(rport, int) else 0),
                 server=bool(hist & HIST_SERVER))  # fmt: skip
        info.connected = bool(hist & (HIST_SERVER | HIST_CONNECTED))
    return info


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = struct.unpack("<4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))


def _hex_end(text: str) -> tuple[str, int]:
    ip, port = text.split(":")
    return _hex_ip(ip), int(port, 16)


def find_inet_socket(proc_root: str, pid: int, inode: int) -> FdInfo | None:
    """A socket with this inode from /proc/PID/net/{tcp,udp,raw}{,6}, or None.

    Only the lines holding the inode's digits are split: a node with thousands of TIME_WAIT
    sockets has tables of megabytes (20k lines here: splitting each cost ~15 ms a lookup)."""
    key = f" {inode} "
    want = str(inode)
    for name, proto in (("tcp", "tcp"), ("udp", "udp"), ("tcp6", "tcp"), ("udp6", "udp"),
                        ("raw", "raw"), ("raw6", "raw")):
        text = procfs.read_text(f"{proc_root}/{pid}/net/{name}")
        if not text:
            continue
        at = text.find(key, text.find("\n") + 1)  # the header line holds no inode
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            parts = text[start:end if end >= 0 else len(text)].split()
            if len(parts) >= 10 and parts[9] == want:
                return _entry(parts, ipv6=name.endswith("6"), proto=proto)
            at = text.find(key, at + 1)
    return None


def _entry(parts: list[str], *, ipv6: bool, proto: str) -> FdInfo:
    """The socket of one /proc/net table line (split in fields)."""
    local, remote = _hex_end(parts[1]), _hex_end(parts[2])
    info = FdInfo(num=-1, type="ipv6" if ipv6 else "ipv4", l4proto=proto, sockfamily="ip")
    listening = parts[3] == "0A"
    info.lip, info.lport = local
    if listening or remote[1] == 0:
        info.sip, info.sport, info.is_server = local[0], local[1], listening
        info.name = f"{local[0]}:{local[1]}"
    else:
        set_ends(info, local, remote, server=False)
        info.connected = True
    return info
