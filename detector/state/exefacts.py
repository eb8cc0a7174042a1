"""Facts about a process's executable that need its container's file system (via /proc).

* :meth:`ExeFacts.resolve`: the executable a (maybe symlinked) path names, read through the root
  of a live process of the container, when ``/proc/PID/exe`` is already gone;
* :meth:`ExeFacts.upper`: ``proc.is_exe_upper_layer`` (the file has a copy in the container's
  overlayfs upper directory, i.e. it was written after the container started).
"""

from __future__ import annotations

import os
import posixpath

from detector.events import Event, ThreadInfo
from detector.state import procfs
from detector.state.args import as_str


def resolve_path(base: str, path: str) -> str:
    """``path`` made absolute against ``base`` and normalised (no ``.``, ``..``, ``//``)."""
    if not path:
        return base
    if path[0] == "/" and "/." not in path and "//" not in path and path[-1] != "/":
        return path  # already absolute and normal (the usual exec of /usr/bin/x)
    full = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
    norm = posixpath.normpath(full)
    return "/" + norm.lstrip("/") if norm.startswith("//") else norm


class ExeFacts:
    """Per-container roots and overlay upper directories, found through live processes."""

    def __init__(self, proc_root: str = "/proc", read_proc: bool = True) -> None:
        self.proc_root = proc_root
        self.read_proc = read_proc
        self.root_pids: dict[str, int] = {}  # container id -> a pid inside it
        self._upperdirs: dict[str, str | None] = {}

    def root_of(self, th: ThreadInfo) -> str | None:
        """A path to the root directory ``th`` sees, through a live process of its container."""
        if th.container.is_host:
            return ""
        for pid in (th.pid, self.root_pids.get(th.container.id)):
            if pid and os.path.exists(f"{self.proc_root}/{pid}/root/"):
                self.root_pids[th.container.id] = pid
                return f"{self.proc_root}/{pid}/root"
        return None

    def resolve(self, th: ThreadInfo, path: str, ev: Event) -> str:
        """The executable a (maybe symlinked) path names, when /proc/PID/exe is already gone."""
        root = self.root_of(th) if self.read_proc else None
        if root is not None:
            for _ in range(8):
                try:
                    link = os.readlink(root + path)
                except OSError:
                    break
                path = resolve_path(posixpath.dirname(path), link)
        dname = as_str((ev.ctx or {}).get("exe_dname"))
        if dname and posixpath.basename(path) != dname:
            path = posixpath.join(posixpath.dirname(path), dname)
        return path

    def upper(self, th: ThreadInfo) -> bool:
        """The executable was written in the container (overlayfs upper layer)."""
        if th.container.is_host or not self.read_proc or not th.exepath.startswith("/"):
            return False
        key = th.container.id
        upper = self._upperdirs.get(key)
        if upper is None:
            for pid in (th.pid, self.root_pids.get(key)):
                if pid:
                    upper = procfs.overlay_upperdir(pid, self.proc_root)
                    if upper is not None:
                        self._upperdirs[key] = upper
                        break
        return upper is not None and os.path.lexists(upper + th.exepath)
