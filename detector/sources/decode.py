"""Decoding kernel records (bytes) into :class:`detector.events.Event`: a pure function.

A record is ``struct hdr`` (``detector/bpf/events.h``), then, as its ``kind`` bits say, a
``struct proc_ctx`` and a ``struct tuple``, then the strings ``len[0..2]`` and a sockaddr
``len[3]`` bytes long. ``args`` get Falco's parameter names for the event; values Falco takes
from its state (``cwd``, ``exe`` of a clone, ``dev``/``ino`` of an open) are left out for the
state tracker. Flags and modes are the kernel's raw integers.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import socket
import struct
from collections.abc import Callable
from typing import Any

from detector.events import Event
from detector.sources.syscall_nrs import NAMES
from detector.sources.syscalls import BY_NR, NR_PROCEXIT

K_PROC, K_TUPLE, K_UBUF = 1, 2, 4
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
        ("pad", ctypes.c_uint16 * 3),
        ("laddr", ctypes.c_uint8 * 16),
        ("raddr", ctypes.c_uint8 * 16),
    ]


# The same layouts as precompiled Structs (the hot path); tests hold them against the C.
HDR = struct.Struct("<QQq6QQII4HHHI16s3Q")
PROC = struct.Struct("<8I3QQqqIIQ32s96s96s96s96s")
TUPLE = struct.Struct("<5H6x16s16s")
assert HDR.size == ctypes.sizeof(Hdr) and PROC.size == ctypes.sizeof(ProcCtx)
assert TUPLE.size == ctypes.sizeof(Tuple)

_U64 = 1 << 64
Buffer = bytes | bytearray | memoryview | mmap.mmap
_I32 = struct.Struct("<i")


def _s32(v: int) -> int:
    """A register's low 32 bits as a signed int (fds, dirfds)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    return v - _U64 if v & (1 << 63) else v


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


_L4 = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp", 255: "raw"}


def tuple_info(t: tuple[int, int, int, int, int, bytes, bytes]) -> dict[str, Any]:
    """The decoded ``struct tuple`` as ctx keys (local and remote ends)."""
    family, stype, proto, lport, rport, laddr, raddr = t
    if family == socket.AF_INET:
        lip = socket.inet_ntop(socket.AF_INET, laddr[:4])
        rip = socket.inet_ntop(socket.AF_INET, raddr[:4])
        fam = "ipv4"
    else:
        lip = socket.inet_ntop(socket.AF_INET6, laddr)
        rip = socket.inet_ntop(socket.AF_INET6, raddr)
        fam = "ipv6"
    l4 = _L4.get(proto) or ("udp" if stype == socket.SOCK_DGRAM else "tcp")
    return {"sock_family": fam, "l4proto": l4, "lip": lip, "lport": lport, "rip": rip,
            "rport": rport}  # fmt: skip


def _split_args(raw: bytes) -> list[str]:
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "surrogateescape") for p in parts]


def _str(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", "surrogateescape")


# Per-event argument builders: (a = raw args, res, s = strings, sa = sockaddr dict, u = ubuf,
# ctx) -> Falco's parameters.
Builder = Callable[[tuple[int, ...], int, Any, "dict[str, Any] | None", tuple[int, ...],
                    dict[str, Any]], dict[str, Any]]  # fmt: skip


def _b_open(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"fd": res, "name": s[0], "flags": a[1] & 0xFFFFFFFF, "mode": a[2] & 0xFFFFFFFF}


def _b_openat(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"fd": res, "dirfd": _s32(a[0]), "name": s[0], "flags": a[2] & 0xFFFFFFFF,
            "mode": a[3] & 0xFFFFFFFF}  # fmt: skip


def _b_openat2(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"fd": res, "dirfd": _s32(a[0]), "name": s[0], "flags": u[0] & 0xFFFFFFFF,
            "mode": u[1] & 0xFFFFFFFF, "resolve": u[2] & 0xFFFFFFFF}  # fmt: skip


def _b_creat(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"fd": res, "name": s[0], "mode": a[1] & 0xFFFFFFFF,
            "flags": 0o1 | 0o100 | 0o1000}  # O_WRONLY|O_CREAT|O_TRUNC  # fmt: skip


def _tuple_text(ctx: dict[str, Any], client_is_local: bool) -> str | None:
    if "lip" not in ctx:
        return None
    local = f"{ctx['lip']}:{ctx['lport']}"
    remote = f"{ctx['rip']}:{ctx['rport']}"
    return f"{local}->{remote}" if client_is_local else f"{remote}->{local}"


def _b_connect(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"res": res, "tuple": _tuple_text(ctx, True), "fd": _s32(a[0]), "addr": addr_text(sa)}


def _b_accept(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = {"fd": res, "tuple": _tuple_text(ctx, False), "queuepct": None, "queuelen": None,
           "queuemax": None}  # fmt: skip
    ctx["listen_fd"] = _s32(a[0])
    if sa is not None and "lip" not in ctx and sa.get("family") == "unix":
        ctx["unix_path"] = sa.get("path")
    return out


def _b_accept4(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = _b_accept(a, res, s, sa, u, ctx)  # type: ignore[no-untyped-call]
    out["flags"] = _s32(a[3])
    return out


def _b_bind(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"res": res, "addr": addr_text(sa), "fd": _s32(a[0])}


def _b_io(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"res": res, "data": None, "fd": _s32(a[0]), "size": a[2] & 0xFFFFFFFF,
            "tuple": _tuple_text(ctx, True)}  # fmt: skip


def _b_socketpair(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    fd1 = _s32(u[0]) if res == 0 and u else None
    fd2 = _s32(u[0] >> 32) if res == 0 and u else None
    return {"res": res, "fd1": fd1, "fd2": fd2, "source": None, "peer": None,
            "domain": _s32(a[0]), "type": _s32(a[1]), "proto": _s32(a[2])}  # fmt: skip


def _b_pipe(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    ok = res == 0 and bool(u)
    out = {"res": res, "fd1": _s32(u[0]) if ok else None,
           "fd2": _s32(u[0] >> 32) if ok else None, "ino": None}  # fmt: skip
    return out


def _b_pipe2(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = _b_pipe(a, res, s, sa, u, ctx)  # type: ignore[no-untyped-call]
    out["flags"] = _s32(a[1])
    return out


def _b_clone(name, a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    if name == "clone3":
        flags = u[0] if u else 0
    elif name == "clone":
        flags = a[0]
    elif name == "vfork":
        flags = 0x4000 | 0x100  # CLONE_VFORK | CLONE_VM
    else:
        flags = 0
    ctx["clone_flags"] = flags
    if res > 0:
        ctx["child_tid"] = res
        if not flags & 0x10000:  # not CLONE_THREAD: a new process whose pid is its tid
            ctx["child_pid"] = res
    return {"res": res, "exe": None, "args": None, "tid": ctx["tid"], "pid": ctx["pid"],
            "ptid": ctx["ppid"], "cwd": None, "comm": ctx["comm"], "flags": flags,
            "uid": ctx["uid"], "gid": ctx["gid"], "vtid": ctx.get("vtid"),
            "vpid": ctx.get("vpid")}  # fmt: skip


def _b_execve(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    argv = _split_args(s[1].encode("utf-8", "surrogateescape")) if s[1] else []
    out: dict[str, Any] = {
        "res": res, "exe": argv[0] if argv else (s[0] if res != 0 else None),
        "args": argv[1:], "tid": ctx["tid"], "pid": ctx["pid"], "ptid": ctx["ppid"],
        "cwd": None, "comm": ctx["comm"], "filename": s[0], "tty": ctx.get("tty"),
        "loginuid": ctx.get("loginuid"), "uid": ctx["uid"], "gid": ctx["gid"],
        "cap_inheritable": ctx.get("cap_inheritable"), "cap_permitted": ctx.get("cap_permitted"),
        "cap_effective": ctx.get("cap_effective"), "exe_ino": ctx.get("exe_ino"),
        "exe_ino_ctime": ctx.get("exe_ino_ctime"), "exe_ino_mtime": ctx.get("exe_ino_mtime"),
        "flags": ctx.get("exe_flags"), "trusted_exepath": None,
        "env": s[2].encode("utf-8", "surrogateescape") if res == 0 else None,
    }  # fmt: skip
    if res == 0:
        ctx["argv"] = argv
    return out


def _b_execveat(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = _b_execve(a, res, s, sa, u, ctx)  # type: ignore[no-untyped-call]
    out["dirfd"] = _s32(a[0])
    del out["filename"]
    ctx["filename"] = s[0]
    ctx["dirfd"] = _s32(a[0])
    return out


# Simple builders, generated once: ``param=expr`` where expr is ``res``, ``N`` (None), ``sK``
# (string K), ``aK`` (raw arg K), ``iK`` (arg K as a signed 32-bit int), ``uK`` (arg K's low
# 32 bits), ``lK`` (arg K as a signed 64-bit int).
SIMPLE: dict[str, str] = {
    "listen": "res=res fd=i0 backlog=i1",
    "socket": "fd=res domain=i0 type=u1 proto=u2 flags=N",
    "shutdown": "res=res fd=i0 how=i1",
    "dup": "res=res oldfd=i0",
    "dup2": "res=res oldfd=i0 newfd=i1",
    "dup3": "res=res oldfd=i0 newfd=i1 flags=u2",
    "fcntl": "res=res fd=i0 cmd=i1 arg=a2",
    "close": "res=res fd=i0",
    "eventfd": "res=res initval=a0 flags=N",
    "eventfd2": "res=res initval=a0 flags=u1",
    "signalfd4": "res=res fd=i0 mask=N flags=u3",
    "timerfd_create": "res=res clockid=i0 flags=u1",
    "inotify_init1": "res=res flags=u0",
    "epoll_create1": "res=res flags=u0",
    "symlink": "res=res target=s0 linkpath=s1",
    "symlinkat": "res=res target=s0 linkdirfd=i1 linkpath=s1",
    "link": "res=res oldpath=s0 newpath=s1",
    "linkat": "res=res olddir=i0 oldpath=s0 newdir=i2 newpath=s1 flags=u4",
    "unlink": "res=res path=s0",
    "unlinkat": "res=res dirfd=i0 name=s0 flags=u2",
    "rename": "res=res oldpath=s0 newpath=s1",
    "renameat": "res=res olddirfd=i0 oldpath=s0 newdirfd=i2 newpath=s1",
    "renameat2": "res=res olddirfd=i0 oldpath=s0 newdirfd=i2 newpath=s1 flags=u4",
    "mkdir": "res=res path=s0 mode=u1",
    "mkdirat": "res=res dirfd=i0 path=s0 mode=u2",
    "rmdir": "res=res path=s0",
    "chmod": "res=res filename=s0 mode=u1",
    "fchmod": "res=res fd=i0 mode=u1",
    "fchmodat": "res=res dirfd=i0 filename=s0 mode=u2",
    "setuid": "res=res uid=u0",
    "setgid": "res=res gid=u0",
    "setreuid": "res=res ruid=u0 euid=u1",
    "setregid": "res=res rgid=u0 egid=u1",
    "setresuid": "res=res ruid=u0 euid=u1 suid=u2",
    "setresgid": "res=res rgid=u0 egid=u1 sgid=u2",
    "setsid": "res=res",
    "setpgid": "res=res pid=i0 pgid=i1",
    "chdir": "res=res path=s0",
    "fchdir": "res=res fd=i0",
    "chroot": "res=res path=s0",
    "ptrace": "res=res addr=a2 data=a3 request=i0 pid=i1",
    "memfd_create": "fd=res name=s0 flags=u1",
    "mount": "res=res dev=s0 dir=s1 type=s2 flags=u3",
    "umount2": "res=res name=s0 flags=u1",
    "init_module": "res=res img=N length=a1 uargs=s0",
    "finit_module": "res=res fd=i0 uargs=s0 flags=u2",
    "bpf": "fd=res cmd=i0",
    "userfaultfd": "res=res flags=u0",
    "prctl": "res=res option=i0 arg2_str=N arg2_int=l1",
    "setns": "res=res fd=i0 nstype=u1",
    "unshare": "res=res flags=u0",
    "pidfd_open": "fd=res pid=i0 flags=u1",
    "pidfd_getfd": "fd=res pid_fd=i0 target_fd=i1 flags=u2",
    "capset": "res=res",
    "procexit": "status=N ret=N sig=N core=N reaper_tid=N",
}


def _expr(code: str) -> str:
    if code in ("res", "N"):
        return "None" if code == "N" else "res"
    kind, idx = code[0], int(code[1:])
    return {
        "s": f"s[{idx}]",
        "a": f"a[{idx}]",
        "i": f"(((a[{idx}] & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000)",
        "u": f"(a[{idx}] & 0xFFFFFFFF)",
        "l": f"((a[{idx}] ^ 0x8000000000000000) - 0x8000000000000000)",
    }[kind]


def compile_simple(spec: str) -> Builder:
    """A builder function from a ``param=expr ...`` spec (compiled once, no per-event lookups)."""
    items = ", ".join(
        f"{name!r}: {_expr(code)}" for name, code in (p.split("=") for p in spec.split())
    )
    fn = eval(f"lambda a, res, s, sa, u, ctx: {{{items}}}")
    return fn  # type: ignore[no-any-return]


BUILDERS: dict[str, Builder] = {
    "open": _b_open, "openat": _b_openat, "openat2": _b_openat2, "creat": _b_creat,
    "connect": _b_connect, "accept": _b_accept, "accept4": _b_accept4, "bind": _b_bind,
    "sendto": _b_io, "sendmsg": _b_io, "recvfrom": _b_io, "recvmsg": _b_io,
    "socketpair": _b_socketpair, "pipe": _b_pipe, "pipe2": _b_pipe2,
    "clone": functools.partial(_b_clone, "clone"), "clone3": functools.partial(_b_clone, "clone3"),
    "fork": functools.partial(_b_clone, "fork"), "vfork": functools.partial(_b_clone, "vfork"),
    "execve": _b_execve, "execveat": _b_execveat,
    **{name: compile_simple(spec) for name, spec in SIMPLE.items()},
}  # fmt: skip

_BY_NR: dict[int, tuple[str, Builder]] = {
    nr: (sp.name, BUILDERS[sp.name]) for nr, sp in BY_NR.items()
}
_BY_NR[NR_PROCEXIT] = ("procexit", BUILDERS["procexit"])
_NO_STRS = ("", "", "")
_COMMS: dict[bytes, str] = {}
_hdr_unpack = HDR.unpack_from
_proc_unpack = PROC.unpack_from
_tuple_unpack = TUPLE.unpack_from


def _generic(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"res": res}


def decode(data: Buffer, num: int, boot_to_epoch_ns: int = 0, pos: int = 0) -> Event:
    """The record at ``pos`` of ``data`` as an Event (``thread``/``fd`` left for the state)."""
    h = _hdr_unpack(data, pos)
    (ts, pid_tgid, res, _a0, _a1, _a2, _a3, _a4, _a5, uid_gid, nr, ppid, l0, l1, l2, l3, kind,
     _size, cpu, comm, u0, u1, u2) = h  # fmt: skip
    tid = pid_tgid & 0xFFFFFFFF
    entry = _BY_NR.get(nr)
    if entry is None:
        name = NAMES[nr] if nr < len(NAMES) else f"syscall_{nr}"
        build: Builder = _generic
    else:
        name, build = entry
    c = _COMMS.get(comm)
    if c is None:
        if len(_COMMS) > 4096:
            _COMMS.clear()
        c = _COMMS[comm] = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
    ctx: dict[str, Any] = {"tid": tid, "pid": pid_tgid >> 32, "ppid": ppid, "comm": c,
                           "uid": uid_gid & 0xFFFFFFFF, "gid": uid_gid >> 32}  # fmt: skip
    off = pos + HDR.size
    if kind:
        if kind & K_PROC:
            _proc_ctx(ctx, _proc_unpack(data, off))
            off += PROC.size
        if kind & K_TUPLE:
            ctx.update(tuple_info(_tuple_unpack(data, off)))
            off += TUPLE.size
    sa = None
    if l0 or l1 or l2 or l3:
        e0, e1 = off + l0, off + l0 + l1
        e2 = e1 + l2
        if entry is not None and name in ("execve", "execveat"):  # argv and env: NUL-separated
            s1 = bytes(data[e0:e1]).decode("utf-8", "surrogateescape")
            s2 = bytes(data[e1:e2]).decode("utf-8", "surrogateescape")
        else:
            s1 = _str(bytes(data[e0:e1]))
            s2 = _str(bytes(data[e1:e2]))
        strs: tuple[str, ...] | list[str] = (_str(bytes(data[off:e0])), s1, s2)
        if l3:
            sa = sockaddr(bytes(data[e2 : e2 + l3]))
            ctx["sockaddr"] = sa
    else:
        strs = _NO_STRS
    args = build(h[3:9], res, strs, sa, (u0, u1, u2) if kind & K_UBUF else (), ctx)
    return Event(num, ts + boot_to_epoch_ns, name, tid, "<", cpu, res, args, None, None,
                 "syscall", None, None, ctx)  # fmt: skip


def _proc_ctx(ctx: dict[str, Any], p: tuple[Any, ...]) -> None:
    (loginuid, sessionid, tmaj, tmin, vpid, _level, euid, egid, cinh, cprm, ceff, ino, ctime,
     mtime, dev, eflags, cgid, dname, cg0, cg1, cg2, cg3) = p  # fmt: skip
    dn = dname.split(b"\0", 1)[0].decode("utf-8", "replace")
    parts = []
    for raw in (cg0, cg1, cg2, cg3):
        name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        if not name or name == "/":
            break
        parts.append(name)
    if parts:  # in /proc/PID/cgroup's form (cgroup v2 line), outermost components first
        ctx["cgroup"] = "0::/" + "/".join(reversed(parts))
    memfd = dn.startswith("memfd:")
    ctx.update(
        loginuid=loginuid, sid=sessionid, tty=tty_dev(tmaj, tmin) if tmaj else 0,
        vpid=vpid, euid=euid, egid=egid, cap_inheritable=cinh, cap_permitted=cprm,
        cap_effective=ceff, exe_ino=ino or None,
        exe_ino_ctime=ctime * 1_000_000_000 if ino else None,
        exe_ino_mtime=mtime * 1_000_000_000 if ino else None, exe_dev=dev,
        exe_upper_layer=bool(eflags & 1), exe_overlay=bool(eflags & 2),
        exe_from_memfd=memfd, exe_dname=dn, cgroup_id=cgid,
        # Falco's execve flags: PPM_EXE_UPPER_LAYER=2, PPM_EXE_FROM_MEMFD=4,
        # PPM_EXE_LOWER_LAYER=8 (PPM_EXE_WRITABLE=1 is left to the state tracker).
        exe_flags=(2 if eflags & 1 else 0) | (4 if memfd else 0)
        | (8 if eflags & 2 and not eflags & 1 else 0),
    )  # fmt: skip


__all__ = ["BUILDERS", "HDR", "PROC", "TUPLE", "Hdr", "ProcCtx", "Tuple", "decode", "sockaddr",
           "tty_dev"]  # fmt: skip
