"""Falco's parameters of the simple events, as one table both decoders read.

An entry is ``param=code ...``: ``res`` (the return value), ``N`` (None: Falco fills it from
state, or the source does not read it), ``sK`` (string K), ``aK`` (raw arg K), ``iK`` (arg K as
a signed 32-bit int), ``uK`` (arg K's low 32 bits), ``lK`` (arg K as a signed 64-bit int).
The pure-Python decoder compiles each entry into one function (:func:`compile_simple`); the
compiled fast path (``detector/sources/_lean.c``) gets the parsed form (:func:`parse`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (a = raw args, res, s = strings, sa = sockaddr dict, u = ubuf, ctx) -> Falco's parameters.
Builder = Callable[[tuple[int, ...], int, Any, "dict[str, Any] | None", tuple[int, ...],
                    dict[str, Any]], dict[str, Any]]  # fmt: skip
Param = tuple[str, str, int]  # (Falco's parameter name, code letter, index)

SIMPLE: dict[str, str] = {
    "open": "fd=res name=s0 flags=u1 mode=u2",
    "openat": "fd=res dirfd=i0 name=s0 flags=u2 mode=u3",
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


def parse(spec: str) -> tuple[Param, ...]:
    """``param=code ...`` as (name, letter, index) triples (``res`` -> ``r``, ``N`` -> ``N``)."""
    out: list[Param] = []
    for item in spec.split():
        name, code = item.split("=")
        if code in ("res", "N"):
            out.append((name, "r" if code == "res" else "N", 0))
        else:
            out.append((name, code[0], int(code[1:])))
    return tuple(out)


_EXPR = {
    "r": "res",
    "N": "None",
    "s": "s[{i}]",
    "a": "a[{i}]",
    "i": "(((a[{i}] & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000)",
    "u": "(a[{i}] & 0xFFFFFFFF)",
    "l": "((a[{i}] ^ 0x8000000000000000) - 0x8000000000000000)",
}


def compile_simple(spec: str) -> Builder:
    """A builder function from a ``param=code ...`` spec (compiled once, no per-event lookups)."""
    items = ", ".join(f"{name!r}: {_EXPR[k].format(i=i)}" for name, k, i in parse(spec))
    fn = eval(f"lambda a, res, s, sa, u, ctx: {{{items}}}")
    return fn  # type: ignore[no-any-return]
