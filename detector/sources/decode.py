"""Decoding kernel records (bytes) into :class:`detector.events.Event`: a pure function.

A record is ``struct hdr`` (``detector/bpf/events.h``), then, as its ``kind`` bits say, a
``struct proc_ctx`` and a ``struct tuple``, then the strings ``len[0..2]`` and a sockaddr
``len[3]`` bytes long. ``args`` get Falco's parameter names for the event; values Falco takes
from its state (``cwd``, ``exe`` of a clone, ``dev``/``ino`` of an open) are left out for the
state tracker. Flags and modes are the kernel's raw integers.
"""

from __future__ import annotations

import functools
from typing import Any

from detector.events import Event
from detector.sources.argspec import SIMPLE, Builder, compile_simple
from detector.sources.layout import (
    HDR,
    K_DIR,
    K_PROC,
    K_TUPLE,
    K_UBUF,
    K_VFORK,
    PROC,
    TUPLE,
    Buffer,
    Hdr,
    ProcCtx,
    Tuple,
    addr_text,
    s32,
    sockaddr,
    tty_dev,
    tuple_info,
)
from detector.sources.syscall_nrs import NAMES
from detector.sources.syscalls import BY_NR, NR_PROCEXIT


def _split_args(raw: bytes) -> list[str]:
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "surrogateescape") for p in parts]


def _str(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", "surrogateescape")


def _b_openat2(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    u = u or (0, 0, 0)  # ``how`` unreadable (EFAULT): no flags known
    return {"fd": res, "dirfd": s32(a[0]), "name": s[0], "flags": u[0] & 0xFFFFFFFF,
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
    return {"res": res, "tuple": _tuple_text(ctx, True), "fd": s32(a[0]), "addr": addr_text(sa)}


def _b_accept(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = {"fd": res, "tuple": _tuple_text(ctx, False), "queuepct": None, "queuelen": None,
           "queuemax": None}  # fmt: skip
    ctx["listen_fd"] = s32(a[0])
    if sa is not None and "lip" not in ctx and sa.get("family") == "unix":
        ctx["unix_path"] = sa.get("path")
    return out


def _b_accept4(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = _b_accept(a, res, s, sa, u, ctx)  # type: ignore[no-untyped-call]
    out["flags"] = s32(a[3])
    return out


def _b_bind(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"res": res, "addr": addr_text(sa), "fd": s32(a[0])}


def _b_io(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    return {"res": res, "data": None, "fd": s32(a[0]), "size": a[2] & 0xFFFFFFFF,
            "tuple": _tuple_text(ctx, True)}  # fmt: skip


def _b_socketpair(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    fd1 = s32(u[0]) if res == 0 and u else None
    fd2 = s32(u[0] >> 32) if res == 0 and u else None
    return {"res": res, "fd1": fd1, "fd2": fd2, "source": None, "peer": None,
            "domain": s32(a[0]), "type": s32(a[1]), "proto": s32(a[2])}  # fmt: skip


def _b_pipe(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    ok = res == 0 and bool(u)
    out = {"res": res, "fd1": s32(u[0]) if ok else None,
           "fd2": s32(u[0] >> 32) if ok else None, "ino": None}  # fmt: skip
    return out


def _b_pipe2(a, res, s, sa, u, ctx):  # type: ignore[no-untyped-def]
    out = _b_pipe(a, res, s, sa, u, ctx)  # type: ignore[no-untyped-call]
    out["flags"] = s32(a[1])
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
    out["dirfd"] = s32(a[0])
    del out["filename"]
    ctx["filename"] = s[0]
    ctx["dirfd"] = s32(a[0])
    return out




BUILDERS: dict[str, Builder] = {
    "openat2": _b_openat2, "creat": _b_creat,
    "connect": _b_connect, "accept": _b_accept, "accept4": _b_accept4, "bind": _b_bind,
    "sendto": _b_io, "sendmsg": _b_io, "recvfrom": _b_io, "recvmsg": _b_io,
    "socketpair": _b_socketpair, "pipe": _b_pipe, "pipe2": _b_pipe2,
    "clone": functools.partial(_b_clone, "clone"), "clone3": functools.partial(_b_clone, "clone3"),
    "fork": functools.partial(_b_clone, "fork"), "vfork": functools.partial(_b_clone, "vfork"),
    "execve": _b_execve, "execveat": _b_execveat,
    **{name: compile_simple(spec) for name, spec in SIMPLE.items()},
}  # fmt: skip

EVENTS_BY_NR: dict[int, tuple[str, Builder]] = {
    nr: (sp.name, BUILDERS[sp.name]) for nr, sp in BY_NR.items()
}
EVENTS_BY_NR[NR_PROCEXIT] = ("procexit", BUILDERS["procexit"])
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
    entry = EVENTS_BY_NR.get(nr)
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
            _proc_ctx(ctx, _proc_unpack(data, off), ts, kind)
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
        if kind & K_DIR:  # the kernel's path of the event's dirfd (opens) or fd (fchdir)
            ctx["dirpath"] = s1
        if l3:
            sa = sockaddr(bytes(data[e2 : e2 + l3]))
            ctx["sockaddr"] = sa
    else:
        strs = _NO_STRS
    args = build(h[3:9], res, strs, sa, (u0, u1, u2) if kind & K_UBUF else (), ctx)
    return Event(num, ts + boot_to_epoch_ns, name, tid, "<", cpu, res, args, None, None,
                 "syscall", None, None, ctx)  # fmt: skip


def _proc_ctx(ctx: dict[str, Any], p: tuple[Any, ...], ts: int, kind: int) -> None:
    """The process context into ``ctx``; ``start_age``: how long before the event (``ts``) the
    task started; ``vforked``: a vfork child that has not exec'd (events.h ``K_VFORK``)."""
    (loginuid, sessionid, tmaj, tmin, vpid, _level, euid, egid, cinh, cprm, ceff, ino, ctime,
     mtime, dev, eflags, cgid, start, dname, cg0, cg1, cg2, cg3) = p  # fmt: skip
    if 0 < start <= ts:
        ctx["start_age"] = ts - start
    if kind & K_VFORK:
        ctx["vforked"] = True
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
