"""The record layout the BPF programs write (``detector/bpf/events.h``), and the decoding of
its socket parts (sockaddr, the kernel socket's tuple) into Falco's values.

The ctypes structures mirror the C structs (a test holds them against the compiled C); the
``struct.Struct`` forms of the same layouts are what the hot path unpacks with.
"""

from __future__ import annotations

import ctypes
import mmap
import socket
import struct
from typing import Any

K_PROC, K_TUPLE, K_UBUF, K_DIR, K_VFORK = 1, 2, 4, 8, 16
AT_FDCWD = -100


class Hdr(ctypes.Structure):
    """``struct hdr``: the fixed part of every record."""

    _fields_ = [
        ("ts", ctypes.c_uint64),
        ("pid_tgid", ctypes.c_uint64),
        ("ret", ctypes.c_int64),
        ("args", ctypes.c_uint64 * 6),
        ("uid_gid", ctypes.c_uint64),
        ("nr", ctypes.c_uint32),
        ("ppid", ctypes.c_uint32),
        ("len", ctypes.c_uint16 * 4),
        ("kind", ctypes.c_uint16),
        ("size", ctypes.c_uint16),
        ("cpu", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("ubuf", ctypes.c_uint64 * 3),
    ]


class ProcCtx(ctypes.Structure):
    """``struct proc_ctx``: process facts for exec/clone/capset."""

    _fields_ = [
        ("loginuid", ctypes.c_uint32),
        ("sessionid", ctypes.c_uint32),
        ("tty_major", ctypes.c_uint32),
        ("tty_minor", ctypes.c_uint32),
        ("vpid", ctypes.c_uint32),
        ("vtid_level", ctypes.c_uint32),
        ("euid", ctypes.c_uint32),
        ("egid", ctypes.c_uint32),
        ("cap_inh", ctypes.c_uint64),
        ("cap_prm", ctypes.c_uint64),
        ("cap_eff", ctypes.c_uint64),
        ("exe_ino", ctypes.c_uint64),
        ("exe_ctime", ctypes.c_int64),
        ("exe_mtime", ctypes.c_int64),
        ("exe_dev", ctypes.c_uint32),
        ("exe_flags", ctypes.c_uint32),
        ("cgroup_id", ctypes.c_uint64),
        ("start_ts", ctypes.c_uint64),
        ("exe_dname", ctypes.c_char * 32),
        ("cgroup", (ctypes.c_char * 96) * 4),
    ]


class Tuple(ctypes.Structure):
    """``struct tuple``: a socket's two ends, read from the kernel socket."""

    _fields_ = [
        ("family", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("proto", ctypes.c_uint16),
        ("lport", ctypes.c_uint16),
        ("rport", ctypes.c_uint16),
        ("hist", ctypes.c_uint16),
        ("ino", ctypes.c_uint32),
        ("laddr", ctypes.c_uint8 * 16),
        ("raddr", ctypes.c_uint8 * 16),
    ]


# The same layouts as precompiled Structs (the hot path); tests hold them against the C.
HDR = struct.Struct("<QQq6QQII4HHHI16s3Q")
PROC = struct.Struct("<8I3QQqqIIQQ32s96s96s96s96s")
TUPLE = struct.Struct("<6HI16s16s")
assert HDR.size == ctypes.sizeof(Hdr) and PROC.size == ctypes.sizeof(ProcCtx)
assert TUPLE.size == ctypes.sizeof(Tuple)

Buffer = bytes | bytearray | memoryview | mmap.mmap


def s32(v: int) -> int:
    """A register's low 32 bits as a signed int (fds, dirfds)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def tty_dev(major: int, minor: int) -> int:
    """The kernel's new_encode_dev(MKDEV(major, minor)), as Falco's proc.tty shows it."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def sockaddr(raw: bytes) -> dict[str, Any] | None:
    """A struct sockaddr: family name, address and port, or a unix path."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET and len(raw) >= 8:
        return {
            "family": "ipv4",
            "ip": socket.inet_ntop(socket.AF_INET, raw[4:8]),
            "port": int.from_bytes(raw[2:4], "big"),
        }
    if family == socket.AF_INET6 and len(raw) >= 24:
        return {
            "family": "ipv6",
            "ip": socket.inet_ntop(socket.AF_INET6, raw[8:24]),
            "port": int.from_bytes(raw[2:4], "big"),
        }
    if family == socket.AF_UNIX:
        path = raw[2:]
        if path[:1] == b"\0":  # abstract: Falco shows it with a leading @
            name = "@" + path[1:].split(b"\0", 1)[0].decode("utf-8", "replace")
        else:
            name = path.split(b"\0", 1)[0].decode("utf-8", "replace")
        return {"family": "unix", "path": name}
    return {"family": str(family)}


def addr_text(sa: dict[str, Any] | None) -> str | None:
    """Falco's text for a sockaddr parameter: ``ip:port``, ``[ip6]:port`` or the unix path."""
    if sa is None:
        return None
    if sa["family"] == "ipv4":
        return f"{sa['ip']}:{sa['port']}"
    if sa["family"] == "ipv6":
        return f"{sa['ip']}:{sa['port']}"
    return str(sa.get("path", ""))


# events.h HIST_*: struct tuple's ``hist`` bits, the socket's creating events the kernel
# dropped (kfilter.h kf_hist_record); HIST_BARE is kf_sys.hist of socket() only.
HIST_SEEN, HIST_CLIENT, HIST_SERVER, HIST_CONNECTED, HIST_CLOEXEC, HIST_BARE, HIST_HERE = (
    1, 2, 4, 8, 16, 32, 64)
L4_CODES = {"tcp": 6, "udp": 17, "icmp": 1, "raw": 255}  # fd.l4proto's names, their codes
_L4_NAMES = {code: name for name, code in L4_CODES.items()}


def l4_code(proto: int, stype: int) -> int:
    """The layer-4 code of a socket as ``fd.l4proto`` names it: its protocol's (ICMPv6 is
    icmp), else udp for a datagram socket and tcp for the rest (kfilter.h kf_sock_bits
    computes the same)."""
    if proto in (6, 17, 1, 255):
        return proto
    if proto == 58:
        return 1
    return 17 if stype == socket.SOCK_DGRAM else 6


def tuple_info(t: tuple[int, int, int, int, int, int, int, bytes, bytes]) -> dict[str, Any]:
    """The decoded ``struct tuple`` as ctx keys (local and remote ends, the socket's inode,
    and ``sock_hist``, the history bits of a dup's socket, when it has one)."""
    family, stype, proto, lport, rport, hist, ino, laddr, raddr = t
    if family == socket.AF_INET:
        lip = socket.inet_ntop(socket.AF_INET, laddr[:4])
        rip = socket.inet_ntop(socket.AF_INET, raddr[:4])
        fam = "ipv4"
    else:
        lip = socket.inet_ntop(socket.AF_INET6, laddr)
        rip = socket.inet_ntop(socket.AF_INET6, raddr)
        fam = "ipv6"
    out = {"sock_family": fam, "l4proto": _L4_NAMES[l4_code(proto, stype)], "lip": lip,
           "lport": lport, "rip": rip, "rport": rport, "sock_ino": ino}  # fmt: skip
    if hist:
        out["sock_hist"] = hist
    return out
