"""An fd missing from the table (opened before the scan, or missed), described from /proc."""

from __future__ import annotations

import os

from detector.events import FdInfo
from detector.state import procfs
from detector.state.sockets import find_inet_socket

_ANON = {
    "[eventfd]": "event",
    "[signalfd]": "signalfd",
    "[eventpoll]": "eventpoll",
    "inotify": "inotify",
    "[timerfd]": "timerfd",
    "[userfaultfd]": "userfaultfd",
    "[io_uring]": "io_uring",
    "[pidfd]": "pidfd",
    "bpf-map": "bpf",
    "bpf-prog": "bpf",
    "bpf_link": "bpf",
}


def read_proc_fd(proc_root: str, pid: int, num: int) -> FdInfo | None:
    """An fd described from ``/proc/PID/fd/N`` (and /proc/PID/net for sockets)."""
    link = procfs.read_link(f"{proc_root}/{pid}/fd/{num}")
    if link is None:
        return None
    flags = 0
    info_text = procfs.read_text(f"{proc_root}/{pid}/fdinfo/{num}")
    if info_text:
        for line in info_text.splitlines():
            if line.startswith("flags:"):
                flags = int(line.split()[1], 8)
                break
    if link.startswith("/memfd:"):
        name = link[1:].removesuffix(" (deleted)")
        return FdInfo(num=num, type="memfd", name=name, nameraw=name, open_flags=flags)
    if link.startswith("/"):
        try:
            is_dir = os.path.isdir(f"{proc_root}/{pid}/fd/{num}")
        except OSError:
            is_dir = False
        return FdInfo(num=num, type="directory" if is_dir else "file", name=link,
                      nameraw=link, open_flags=flags)
    if link.startswith("socket:["):
        inode = int(link[8:-1])
        found = find_inet_socket(proc_root, pid, inode)
        if found is None:
            return FdInfo(num=num, type="unix", sockfamily="unix", open_flags=flags)
        found.num, found.open_flags = num, flags
        return found
    if link.startswith("pipe:["):
        return FdInfo(num=num, type="pipe", open_flags=flags, ino=int(link[6:-1]))
    if link.startswith("anon_inode:"):
        kind = link[len("anon_inode:") :]
        return FdInfo(num=num, type=_ANON.get(kind, "file"), name=link, open_flags=flags)
    return FdInfo(num=num, type="file", name=link, nameraw=link, open_flags=flags)
