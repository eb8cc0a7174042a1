"""Users and groups as a process sees them: read from its own root's /etc/passwd and /etc/group.

A container has its own /etc/passwd, so ``user.name`` of uid 1000 depends on where the process
runs. Files are read through ``/proc/PID/root`` and cached per root key (the container id, or
``host``); the host's files are re-read when their modification time changes (checked at most
once a second). Unknown ids get a :class:`UserInfo` with ``name=None``.

A container's files are its owner's input: only regular files are read (a FIFO or a link to
``/dev/zero`` would block or never end), at most ``MAX_FILE_BYTES`` of each (the lines after
are ignored), and at most ``MAX_ROOTS`` roots are kept, so the table stays bounded.
"""

from __future__ import annotations

import os
import stat
import time

from detector.events import GroupInfo, ThreadInfo, UserInfo
from falcoctl_py.bounded import is_digits

_RECHECK_S = 1.0
MAX_FILE_BYTES = 1 << 20  # about 10,000 users
MAX_ROOTS = 256


def parse_passwd(text: str) -> dict[int, UserInfo]:
    """uid -> user from the text of an /etc/passwd file (bad lines are skipped)."""
    out: dict[int, UserInfo] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 7 or not is_digits(parts[2]):
            continue
        uid = int(parts[2])
        out.setdefault(uid, UserInfo(uid=uid, name=parts[0], homedir=parts[5], shell=parts[6]))
    return out


def parse_group(text: str) -> dict[int, GroupInfo]:
    """gid -> group from the text of an /etc/group file."""
    out: dict[int, GroupInfo] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 3 or not is_digits(parts[2]):
            continue
        gid = int(parts[2])
        out.setdefault(gid, GroupInfo(gid=gid, name=parts[0]))
    return out


def _read(path: str) -> tuple[str, float]:
    """The text of a regular file (its first MAX_FILE_BYTES, whole lines) and its mtime."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return "", 0.0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "", st.st_mtime
        data = os.read(fd, MAX_FILE_BYTES)
    except OSError:
        return "", 0.0
    finally:
        os.close(fd)
    if len(data) == MAX_FILE_BYTES:
        data = data[: data.rfind(b"\n") + 1]
    return data.decode("utf-8", errors="replace"), st.st_mtime


class _Root:
    __slots__ = ("checked", "group_mtime", "groups", "passwd_mtime", "root", "users")

    def __init__(self, root: str) -> None:
        self.root = root
        self.users: dict[int, UserInfo] = {}
        self.groups: dict[int, GroupInfo] = {}
        self.passwd_mtime = -1.0
        self.group_mtime = -1.0
        self.checked = 0.0

    def load(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.checked < _RECHECK_S:
            return
        self.checked = now
        for name in ("passwd", "group"):
            path = os.path.join(self.root, "etc", name)
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                mtime = 0.0
            if name == "passwd" and mtime != self.passwd_mtime:
                text, self.passwd_mtime = _read(path)
                self.users = parse_passwd(text)
            elif name == "group" and mtime != self.group_mtime:
                text, self.group_mtime = _read(path)
                self.groups = parse_group(text)


class UserTable:
    """Users and groups per root; ``host_root`` is ``/`` on a real system."""

    def __init__(self, *, host_root: str = "/", proc_root: str = "/proc") -> None:
        self.host_root = host_root
        self.proc_root = proc_root
        self._roots: dict[str, _Root] = {}

    def _root(self, key: str, pid: int) -> _Root:
        root = self._roots.get(key)
        if root is None:
            path = self.host_root if key == "host" else f"{self.proc_root}/{pid}/root"
            root = _Root(path)
            root.load(force=True)
            if key != "host" and not root.users and not root.groups:
                return root  # the process is gone: try again with the next one
            if len(self._roots) >= MAX_ROOTS:
                self._roots.clear()
            self._roots[key] = root
        elif key == "host":
            root.load()
        return root

    def user(self, key: str, pid: int, uid: int) -> UserInfo:
        """The user ``uid`` in the root of container ``key`` (entered through ``pid``)."""
        found = self._root(key, pid).users.get(uid)
        return found if found is not None else UserInfo(uid=uid)

    def group(self, key: str, pid: int, gid: int) -> GroupInfo:
        """The group ``gid`` in the root of container ``key``."""
        found = self._root(key, pid).groups.get(gid)
        return found if found is not None else GroupInfo(gid=gid)


def users_stale(th: ThreadInfo) -> bool:
    """Whether the thread's user, group or login user was looked up for other ids (an exec of
    a setuid or setgid program, a new audit login uid)."""
    login = th.loginuser.uid if th.loginuser is not None else -1
    return (th.user is None or th.user.uid != th.uid or th.group is None
            or th.group.gid != th.gid or login != (th.loginuid if th.loginuid >= 0 else -1))
