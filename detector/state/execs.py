"""What a successful execve/execveat tells of the new process image, from the event or /proc.

comm comes from the kernel, or is the basename of the file name passed (field-semantics #4);
exe is argv[0]; the exe facts (memfd, overlayfs upper layer, writable, inode times) come from
the event when the source gives them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from detector.events import Event, ThreadInfo
from detector.state import procfs
from detector.state.args import arg, as_int, as_str

_INODE_ARGS = ("exe_ino", "exe_ino_ctime", "exe_ino_mtime")


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


def set_exe_facts(ev: Event, th: ThreadInfo, upper: Callable[[ThreadInfo], bool]) -> None:
    """memfd, upper layer, writable and inode facts of ``th``'s new exe (``th.exepath`` set)."""
    memfd = arg(ev, "exe_from_memfd")
    th.exe_from_memfd = bool(memfd) if memfd is not None else th.exepath.startswith("/memfd:")
    up = arg(ev, "exe_upper_layer")
    th.exe_upper_layer = bool(up) if up is not None else upper(th)
    writable = arg(ev, "exe_writable")
    th.exe_writable = bool(writable) if writable is not None else False
    for key in _INODE_ARGS:
        v = as_int(arg(ev, key))
        if v is not None:
            setattr(th, key, v)
