"""Watch rules files and their directories: inotify through ctypes, or a polling fallback.

Files are watched for close-after-write, moves and deletion of themselves; directories (the
rules directories and the directories holding listed files) for files created, deleted, closed
after writing, and moved in or out, which also catches Kubernetes' ConfigMap update: a new
``..<timestamp>`` directory, then the ``..data`` symlink renamed over the old one. Every change
calls ``on_change(reason)``; the caller debounces. Watches are re-armed after each change, since
a swap or a replacing ``mv`` gives a path a new inode.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("detector.watch")

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_IGNORED = 0x8000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
FILE_MASK = IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB
DIR_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE
_EVENT = struct.Struct("iIII")


def _relevant_name(name: str, file_names: set[str]) -> bool:
    return name.endswith((".yaml", ".yml")) or name == "..data" or name in file_names


def watch_targets(entries: list[Path]) -> tuple[set[Path], set[Path]]:
    """(files, directories) to watch for rules entries that are files or directories."""
    files: set[Path] = set()
    dirs: set[Path] = set()
    for entry in entries:
        p = Path(os.path.abspath(entry))
        if p.is_dir():
            dirs.add(p)
            files.update(c for c in p.iterdir() if c.suffix in (".yaml", ".yml"))
        else:
            files.add(p)
            dirs.add(p.parent)
    return files, dirs


class _Inotify:
    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        self._libc = ctypes.CDLL(name, use_errno=True)
        self.fd = int(self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")

    def add(self, path: Path, mask: int) -> int:
        return int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        out, pos = [], 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            raw = data[pos + _EVENT.size: pos + _EVENT.size + length]
            out.append((wd, mask, os.fsdecode(raw.rstrip(b"\0"))))
            pos += _EVENT.size + length
        return out

    def close(self) -> None:
        os.close(self.fd)


class RulesWatcher:
    """Calls ``on_change(reason)`` when a watched rules file or directory changes."""

    def __init__(self, entries: Callable[[], list[Path]], on_change: Callable[[str], None],
                 *, poll_interval: float = 1.0, force_polling: bool = False) -> None:
        self._entries = entries
        self._on_change = on_change
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # ends a blocked select
        self._inotify: _Inotify | None = None
        if not force_polling:
            try:
                self._inotify = _Inotify()
            except (OSError, AttributeError) as err:
                log.warning("inotify unavailable (%s): polling rules files every %.1fs",
                            err, poll_interval)
        self._wds: dict[int, tuple[Path, bool]] = {}  # wd -> (path, is_dir)
        self._file_names: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="rules-watcher", daemon=True)

    @property
    def mode(self) -> str:
        return "inotify" if self._inotify is not None else "polling"

    def start(self) -> RulesWatcher:
        self._arm()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._stop_fd >= 0:
            os.eventfd_write(self._stop_fd, 1)
        self._thread.join(2)
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        if self._stop_fd >= 0 and not self._thread.is_alive():
            os.close(self._stop_fd)
            self._stop_fd = -1

    def _arm(self) -> None:
        try:
            files, dirs = watch_targets(self._entries())
        except OSError as err:
            log.warning("cannot list rules paths to watch: %s", err)
            return
        self._file_names = {f.name for f in files}
        if self._inotify is None:
            self._snapshot = self._take_snapshot(files, dirs)
            return
        # Add first, then remove what is no longer watched: a path still watched keeps its wd
        # (inotify returns the same one), so no event falls between a remove and an add.
        wds: dict[int, tuple[Path, bool]] = {}
        for path, mask, is_dir in [*((d, DIR_MASK, True) for d in dirs),
                                   *((f, FILE_MASK, False) for f in files)]:
            wd = self._inotify.add(path, mask)
            if wd >= 0:
                wds[wd] = (path, is_dir)
            elif ctypes.get_errno() != errno.ENOENT:
                log.warning("cannot watch %s: %s", path, os.strerror(ctypes.get_errno()))
        for wd in self._wds.keys() - wds.keys():
            self._inotify.remove(wd)
        self._wds = wds

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reason = self._wait_inotify() if self._inotify else self._wait_poll()
            except Exception as err:  # the watcher must survive, never die silently
                log.warning("rules watcher error: %s", err)
                self._stop.wait(self._poll_interval)
                continue
            if reason:
                if self._inotify is not None:  # polling: _wait_poll's snapshot is current
                    self._arm()
                self._on_change(reason)

    def _wait_inotify(self) -> str | None:
        assert self._inotify is not None
        # blocks until a change or stop(): no timer while nothing happens
        ready, _, _ = select.select([self._inotify.fd, self._stop_fd], [], [])
        if self._inotify.fd not in ready:
            return None
        reasons = []
        for wd, mask, name in self._inotify.read():
            if mask & IN_IGNORED:
                continue
            path, is_dir = self._wds.get(wd, (Path("?"), False))
            if is_dir and not _relevant_name(name, self._file_names):
                continue
            reasons.append(f"{path / name if name else path} ({_describe(mask)})")
        return "; ".join(reasons) or None

    def _take_snapshot(self, files: set[Path], dirs: set[Path]) -> dict[str, tuple[int, ...]]:
        snap: dict[str, tuple[int, ...]] = {}
        names = {f.name for f in files}
        for d in dirs:
            try:
                for c in d.iterdir():
                    if not _relevant_name(c.name, names):
                        continue
                    st = os.stat(c) if c.exists() else os.lstat(c)
                    snap[str(c)] = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                snap[str(d)] = (-1,)
        for f in files:
            try:
                st = os.stat(f)
                snap[str(f)] = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                snap[str(f)] = (-1,)
        return snap

    def _wait_poll(self) -> str | None:
        self._stop.wait(self._poll_interval)
        old = self._snapshot
        files, dirs = watch_targets(self._entries())
        new = self._take_snapshot(files, dirs)
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        self._snapshot = new
        return "; ".join(f"{c} (changed)" for c in changed) or None


def _describe(mask: int) -> str:
    names = [(IN_CLOSE_WRITE, "close_write"), (IN_MOVED_TO, "moved_to"),
             (IN_MOVED_FROM, "moved_from"), (IN_CREATE, "create"), (IN_DELETE, "delete"),
             (IN_DELETE_SELF, "delete_self"), (IN_MOVE_SELF, "move_self"),
             (IN_ATTRIB, "attrib")]
    return ",".join(n for bit, n in names if mask & bit) or hex(mask)
