"""Reading one thread's facts from /proc: the slow path behind the thread table's scan and misses.

Every reader returns ``None`` (or an empty value) when the process went away meanwhile.
"""

from __future__ import annotations

import os
import time

from detector.events import ThreadInfo

CLK_TCK = os.sysconf("SC_CLK_TCK")
UNSET_LOGINUID = 4294967295


def boot_time_ns() -> int:
    """The wall-clock time of boot, in ns since the epoch."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def read_link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def clean_exepath(link: str) -> str:
    """The executable path of a /proc/PID/exe link, without the `` (deleted)`` suffix."""
    return link.removesuffix(" (deleted)")


def parse_stat(text: str) -> tuple[str, list[str]]:
    """(comm, fields after the comm) of a /proc/PID/stat line; field n is ``rest[n - 3]``."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    return text[open_paren + 1 : close_paren], text[close_paren + 2 :].split()


def parse_status(text: str) -> dict[str, str]:
    """Key -> raw value of a /proc/PID/status file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def split_argv(raw: bytes | str) -> list[str]:
    """argv from NUL-separated bytes or text (a trailing NUL is ignored)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text.endswith("\0"):
        text = text[:-1]
    return text.split("\0") if text else []


def read_thread(
    tid: int, pid: int | None = None, *, proc_root: str = "/proc", boot_ns: int = 0
) -> tuple[ThreadInfo, str] | None:
    """A thread built from /proc and the text of its cgroup file, or None when it is gone."""
    base = f"{proc_root}/{pid}/task/{tid}" if pid is not None else f"{proc_root}/{tid}"
    stat = read_text(f"{base}/stat")
    status = read_text(f"{base}/status")
    if stat is None or status is None:
        return None
    try:
        comm, rest = parse_stat(stat)
        fields = parse_status(status)
        tgid = int(fields.get("Tgid", tid))
        ppid = int(rest[1])
        uids = fields.get("Uid", "0 0").split()
        gids = fields.get("Gid", "0 0").split()
        nspid = fields.get("NSpid", str(tid)).split()
        start_ticks = int(rest[19])
    except (ValueError, IndexError):
        return None
    proc = f"{proc_root}/{tgid}"
    cmdline = read_text(f"{proc}/cmdline") or ""
    argv = split_argv(cmdline)
    loginuid_text = read_text(f"{proc}/loginuid")
    loginuid = int(loginuid_text) if loginuid_text and loginuid_text.strip().isdigit() else -1
    exe_link = read_link(f"{proc}/exe") or ""
    vtid = int(nspid[-1])
    vpid = vtid
    if tgid != tid:  # a thread's NSpid is its own id: the process's comes from the leader
        main = parse_status(read_text(f"{proc}/status") or "").get("NSpid", "").split()
        vpid = int(main[-1]) if main and main[-1].isdigit() else vtid
    th = ThreadInfo(
        tid=tid,
        pid=tgid,
        ppid=ppid,
        comm=comm,
        exe=argv[0] if argv else comm,
        exepath=clean_exepath(exe_link),
        args=argv[1:],
        cwd=read_link(f"{proc}/cwd") or "/",
        tty=int(rest[4]),
        sid=int(rest[3]),
        vpgid=int(rest[2]),
        loginuid=-1 if loginuid == UNSET_LOGINUID else loginuid,
        uid=int(uids[1]),
        gid=int(gids[1]),
        euid=int(uids[1]),
        egid=int(gids[1]),
        start_ts=boot_ns + start_ticks * 1_000_000_000 // CLK_TCK,
        cap_effective=int(fields.get("CapEff", "0"), 16),
        cap_permitted=int(fields.get("CapPrm", "0"), 16),
        cap_inheritable=int(fields.get("CapInh", "0"), 16),
        exe_from_memfd=exe_link.startswith("/memfd:"),
        vpid=vpid,
        vtid=vtid,
        is_vpid1=len(nspid) > 1 and vpid == 1,
        env=read_environ(proc),
    )
    th.exec_ts = th.start_ts
    return th, read_text(f"{proc}/cgroup") or ""


MAX_ENVIRON = 64 * 1024


def read_environ(proc: str) -> list[str]:
    """A process's environment (``/proc/PID/environ``, at most 64 KiB), as ``K=V`` strings."""
    try:
        with open(f"{proc}/environ", "rb") as f:
            raw = f.read(MAX_ENVIRON)
    except OSError:
        return []
    return [p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0") if p]


def list_threads(proc_root: str = "/proc") -> list[tuple[int, int]]:
    """(tid, pid) of every thread on the system, processes in pid order."""
    out: list[tuple[int, int]] = []
    try:
        pids = sorted(int(n) for n in os.listdir(proc_root) if n.isdigit())
    except OSError:
        return out
    for pid in pids:
        try:
            tids = sorted(int(n) for n in os.listdir(f"{proc_root}/{pid}/task") if n.isdigit())
        except OSError:
            continue
        out.extend((tid, pid) for tid in tids)
    return out


def overlay_upperdir(pid: int, proc_root: str = "/proc") -> str | None:
    """The upper directory of the overlayfs mounted at the process's root, if any."""
    text = read_text(f"{proc_root}/{pid}/mountinfo")
    if not text:
        return None
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        parts = left.split()
        if len(parts) < 5 or parts[4] != "/":
            continue
        rparts = right.split()
        if len(rparts) >= 3 and rparts[0] == "overlay":
            for opt in rparts[2].split(","):
                if opt.startswith("upperdir="):
                    return opt[len("upperdir=") :]
    return None
