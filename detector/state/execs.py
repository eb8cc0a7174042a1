"""What a successful execve/execveat tells of the new process image, from the event or /proc.

comm comes from the kernel, or is the basename of the file name passed (field-semantics #4);
exe is argv[0]; the exe facts (memfd, overlayfs upper layer, writable, inode times) come from
the event when the source gives them.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import Any

from detector.events import Event, ThreadInfo
from detector.state import procfs
from detector.state.args import arg, as_int, as_str

NO_ID = 0xFFFFFFFF
_INODE_ARGS = ("exe_ino", "exe_ino_ctime", "exe_ino_mtime")

ExeKey = tuple[str, str, int, int, int, int]


class ExePaths:
    """Executable paths by what names the file: the container, the path run and the file's
    identity the kernel gives (device, inode, ctime, mtime), so that ``/proc/PID/exe`` is read
    once per program and not at every exec of it. A file replaced or renamed has a new identity
    (a new inode, or a new ctime), so a stale path is never returned for it."""

    def __init__(self, proc_root: str = "/proc", read_proc: bool = True, limit: int = 4096) -> None:
        self.proc_root = proc_root
        self.read_proc = read_proc
        self.limit = limit
        self._paths: dict[ExeKey, str] = {}

    @staticmethod
    def key(ev: Event, th: ThreadInfo, run: str) -> ExeKey | None:
        """The identity of the file ``ev`` executed (None when the source does not give it)."""
        ctx = ev.ctx
        if ctx is None:
            return None
        ino = as_int(ctx.get("exe_ino"))
        if not ino:
            return None
        dev = as_int(ctx.get("exe_dev")) or 0
        ctime = as_int(ctx.get("exe_ino_ctime")) or 0
        mtime = as_int(ctx.get("exe_ino_mtime")) or 0
        return (th.container.id, run, dev, ino, ctime, mtime)

    def find(self, ev: Event, th: ThreadInfo, run: str) -> str | None:
        """The path of the file ``th`` just exec'd as ``run``: known by its identity, else
        ``/proc/PID/exe`` (then remembered); None when neither tells."""
        key = self.key(ev, th, run)
        found = self.get(key)
        if found is not None or not self.read_proc:
            return found
        if key is not None and th.container.is_host:
            found = _host_path(run, key)
            if found is not None:
                self.put(key, found)
                return found
        link = procfs.read_link(f"{self.proc_root}/{th.pid}/exe")
        if not link:
            return None
        path = procfs.clean_exepath(link)
        self.put(key, path)
        return path

    def get(self, key: ExeKey | None) -> str | None:
        """The path remembered for ``key``."""
        return self._paths.get(key) if key is not None else None

    def put(self, key: ExeKey | None, path: str) -> None:
        """Remember ``path`` for ``key`` (the oldest half forgotten when full)."""
        if key is None:
            return
        paths = self._paths
        if len(paths) >= self.limit:
            for old in list(paths)[: self.limit // 2]:
                del paths[old]
        paths[key] = path


def command_line(ev: Event, cmdline: Callable[[], str]) -> tuple[str | None, list[str] | None]:
    """``(exe, args)`` from the event; ``cmdline()`` (the /proc text) when it tells neither."""
    raw_args = arg(ev, "args")
    exe = as_str(arg(ev, "exe"))
    args: list[str] | None
    if isinstance(raw_args, list | tuple):
        args = [as_str(a) or str(a) for a in raw_args]
    elif isinstance(raw_args, bytes | str):
        args = procfs.split_argv(raw_args)
    else:
        args = None
    if exe is None and args is None:
        argv = procfs.split_argv(cmdline())
        exe, args = (argv[0], argv[1:]) if argv else ("", [])
    return exe, args


def exec_comm(ev: Event, exe: str | None) -> str:
    """The new comm: the kernel's, else the basename of the file run (15 bytes, as the kernel)."""
    comm = as_str(arg(ev, "comm"))
    if comm:
        return comm
    source = as_str(arg(ev, "filename")) or exe or ""
    return posixpath.basename(source.rstrip("/"))[:15]


def set_exe_facts_py(ev: Event, th: ThreadInfo, upper: Callable[[ThreadInfo], bool]) -> None:
    """memfd, upper layer, writable and inode facts of ``th``'s new exe (``th.exepath`` set);
    in C when the compiled decoder is built (:func:`set_exe_facts`)."""
    a = ev.args
    ctx = ev.ctx or _NO_CTX
    memfd = a.get("exe_from_memfd")
    if memfd is None:
        memfd = ctx.get("exe_from_memfd")
    th.exe_from_memfd = bool(memfd) if memfd is not None else th.exepath.startswith("/memfd:")
    up = a.get("exe_upper_layer")
    if up is None:
        up = ctx.get("exe_upper_layer")
    th.exe_upper_layer = bool(up) if up is not None else upper(th)
    writable = a.get("exe_writable")
    if writable is None:
        writable = ctx.get("exe_writable")
    th.exe_writable = bool(writable) if writable is not None else False
    for key in _INODE_ARGS:
        v = a.get(key)
        if v is None:
            v = ctx.get(key)
        if type(v) is int or (v := as_int(v)) is not None:
            setattr(th, key, v)


def _host_path(run: str, key: ExeKey) -> str | None:
    """``run`` with its symlinks resolved here, if that is the very file the kernel ran (same
    inode and ctime): true when the detector shares the host's mount namespace."""
    if not run.startswith("/"):
        return None
    try:
        path = os.path.realpath(run)
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if st.st_ino != key[3] or st.st_ctime_ns // 1_000_000_000 != key[4] // 1_000_000_000:
        return None
    return path


_CTX_INTS = ("tty", "sid", "vpgid", "cap_effective", "cap_permitted", "cap_inheritable")
_EFFECTIVE = (("euid", "uid"), ("egid", "gid"))
_NO_CTX: dict[str, object] = {}
_ENVS: dict[bytes | str, list[str]] = {}  # env as the kernel gave it -> split (most repeat)


def split_env(raw: bytes | str) -> list[str]:
    """An exec's environment, split (a copy of the list remembered for the same bytes)."""
    found = _ENVS.get(raw)
    if found is None:
        if len(_ENVS) >= 64:
            _ENVS.clear()
        found = _ENVS[raw] = procfs.split_argv(raw)
    return list(found)


def apply_ctx_py(th: ThreadInfo, ev: Event) -> None:
    """The ids, creds, tty and capabilities the event tells of ``th`` (its args under Falco's
    names first, then the kernel context). On every new process and exec: kept lean, and in C
    when the compiled decoder is built (:func:`apply_ctx`)."""
    a = ev.args
    ctx = ev.ctx or _NO_CTX
    for key in _CTX_INTS:
        v = a.get(key)
        if v is None:
            v = ctx.get(key)
        if type(v) is int or (v := as_int(v)) is not None:
            setattr(th, key, v)
    # user.uid is the effective uid; a source may only know the real one.
    for eff, real in _EFFECTIVE:
        v = ctx.get(eff)
        if type(v) is not int:
            v = a.get(real)
            if v is None:
                v = ctx.get(real)
        if type(v) is int or (v := as_int(v)) is not None:
            setattr(th, real, v)
    th.euid, th.egid = th.uid, th.gid
    v = a.get("loginuid")
    if v is None:
        v = ctx.get("loginuid")
    if type(v) is int or (v := as_int(v)) is not None:
        th.loginuid = -1 if v in (NO_ID, -1) else v


def _apply_ctx_c(th: ThreadInfo, ev: Event) -> None:
    """:func:`apply_ctx_py` in C (``detector/sources/_lean_proc.c``)."""
    _lean_apply_ctx(th, ev.args, ev.ctx)  # type: ignore[misc]  # set only when built


def _set_exe_facts_c(ev: Event, th: ThreadInfo, upper: Callable[[ThreadInfo], bool]) -> None:
    """:func:`set_exe_facts_py` in C but the upper-layer check (asked only when untold)."""
    if _lean_exe_facts(th, ev.args, ev.ctx):  # type: ignore[misc]  # set only when built
        th.exe_upper_layer = upper(th)


def _compiled(name: str) -> Callable[[Any, dict[str, Any], Any], Any] | None:
    """A compiled state helper (None: not built, or FALCOCTL_PY_PURE_DECODE=1)."""
    if os.environ.get("FALCOCTL_PY_PURE_DECODE") == "1":
        return None
    try:
        from detector.sources import _lean
    except ImportError:  # not built
        return None
    found: Callable[[Any, dict[str, Any], Any], Any] | None = getattr(_lean, name, None)
    return found  # None: built before it had this helper


_lean_apply_ctx, _lean_exe_facts = _compiled("apply_ctx"), _compiled("exe_facts")
apply_ctx = apply_ctx_py if _lean_apply_ctx is None else _apply_ctx_c
set_exe_facts = set_exe_facts_py if _lean_exe_facts is None else _set_exe_facts_c


def set_vids(th: ThreadInfo, vtid: int | None) -> None:
    """The thread's id in its pid namespace (the process's too for a main thread)."""
    if vtid is None or vtid <= 0:
        return
    th.vtid = vtid
    if th.tid == th.pid:
        th.vpid = vtid
        th.is_vpid1 = vtid == 1
