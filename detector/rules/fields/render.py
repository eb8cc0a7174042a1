"""Falco's renderings of raw event values: errno names, flag sets, capabilities, times, IPs."""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Iterable

from detector.rules.fields.eventtable import EXIT_PARAMS

IPValue = ipaddress.IPv4Address | ipaddress.IPv6Address

# Linux open(2) flags (the raw values sources put in args["flags"]), in Falco's rendering order.
O_ACCMODE = 0o3
O_RDONLY, O_WRONLY, O_RDWR = 0, 1, 2
O_CREAT = 0o100
OPEN_FLAGS: tuple[tuple[str, int], ...] = (
    ("O_CREAT", 0o100), ("O_EXCL", 0o200), ("O_NOCTTY", 0o400), ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000), ("O_NONBLOCK", 0o4000), ("O_DSYNC", 0o10000), ("O_ASYNC", 0o20000),
    ("O_DIRECT", 0o40000), ("O_LARGEFILE", 0o100000), ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000), ("O_NOATIME", 0o1000000), ("O_CLOEXEC", 0o2000000),
    ("O_SYNC", 0o4010000), ("O_PATH", 0o10000000), ("O_TMPFILE", 0o20200000),
)
MODE_FLAGS: tuple[tuple[str, int], ...] = (
    ("S_IXOTH", 0o1), ("S_IWOTH", 0o2), ("S_IROTH", 0o4), ("S_IXGRP", 0o10), ("S_IWGRP", 0o20),
    ("S_IRGRP", 0o40), ("S_IXUSR", 0o100), ("S_IWUSR", 0o200), ("S_IRUSR", 0o400),
    ("S_ISVTX", 0o1000), ("S_ISGID", 0o2000), ("S_ISUID", 0o4000),
)
# execve/execveat exit ``flags`` (libs ``execve_flags``: PPM_EXE_* bits), in Falco's order.
EXECVE_FLAGS: tuple[tuple[str, int], ...] = (
    ("EXE_WRITABLE", 1 << 0), ("EXE_UPPER_LAYER", 1 << 1), ("EXE_FROM_MEMFD", 1 << 2),
    ("EXE_LOWER_LAYER", 1 << 3),
)
PTRACE_REQUESTS: dict[int, str] = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
    8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
    18: "PTRACE_GETFPXREGS", 19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL",
    0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG", 0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT", 0x4208: "PTRACE_LISTEN",
    0x4209: "PTRACE_PEEKSIGINFO",
}
SOCKET_FAMILIES: dict[int, str] = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
}
BPF_COMMANDS: dict[int, str] = {
    0: "BPF_MAP_CREATE", 1: "BPF_MAP_LOOKUP_ELEM", 2: "BPF_MAP_UPDATE_ELEM",
    3: "BPF_MAP_DELETE_ELEM", 4: "BPF_MAP_GET_NEXT_KEY", 5: "BPF_PROG_LOAD", 6: "BPF_OBJ_PIN",
    7: "BPF_OBJ_GET", 8: "BPF_PROG_ATTACH", 9: "BPF_PROG_DETACH",
}
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
OPEN_TYPES = frozenset({"open", "openat", "openat2", "open_by_handle_at", "creat"})
IO_READ_TYPES = frozenset({"read", "readv", "pread", "preadv", "recv", "recvfrom", "recvmsg",
                           "recvmmsg"})
IO_WRITE_TYPES = frozenset({"write", "writev", "pwrite", "pwritev", "send", "sendto", "sendmsg",
                            "sendmmsg"})
WAIT_TYPES = frozenset({"nanosleep", "clock_nanosleep", "select", "pselect6", "poll", "ppoll",
                        "epoll_wait", "epoll_pwait", "wait4", "waitid", "futex"})
SHELLS = frozenset({"ash", "bash", "csh", "ksh", "sh", "tcsh", "zsh", "dash", "fish"})


def errno_name(res: int) -> str:
    """``SUCCESS`` for a non-negative result, else the errno name (``ENOENT``)."""
    if res >= 0:
        return "SUCCESS"
    return errno.errorcode.get(-res, str(res))


def flags_string(value: int, table: Iterable[tuple[str, int]]) -> str:
    """The names of the bits set in ``value``, joined by ``|``."""
    return "|".join(name for name, bit in table if bit and value & bit == bit)


def open_flags_string(value: int) -> str:
    """Falco's rendering of open flags: the access mode first, then the other bits."""
    acc = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_RDWR")[value & O_ACCMODE]
    rest = flags_string(value & ~O_ACCMODE, OPEN_FLAGS)
    return f"{acc}|{rest}" if rest else acc


def caps_string(mask: int) -> str:
    """A capability mask as Falco renders it: ``CAP_CHOWN CAP_KILL ...``."""
    return " ".join(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


_IP_CACHE: dict[str, IPValue | None] = {}


def ip_value(text: object) -> IPValue | None:
    """An IP address from its text (cached: sources keep handing the same strings)."""
    if text is None:
        return None
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return text
    key = str(text)
    try:
        return _IP_CACHE[key]
    except KeyError:
        pass
    try:
        val: IPValue | None = ipaddress.ip_address(key.strip("[]"))
    except ValueError:
        val = None
    if len(_IP_CACHE) > 65536:
        _IP_CACHE.clear()
    _IP_CACHE[key] = val
    return val


def render_param(event_type: str, name: str, value: object, *, resolved: bool = True) -> str:
    """One event parameter as Falco renders ``evt.arg.NAME`` (``<NA>`` when empty)."""
    if value is None or value == "" or value == b"":
        return "<NA>"
    if isinstance(value, bytes):
        return value.replace(b"\x00", b" ").rstrip(b" ").decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if not isinstance(value, int) or isinstance(value, bool):
        return str(value)
    if not resolved:
        return str(value)
    key = (event_type, name, value)
    text = _RENDERED.get(key)
    if text is None:
        if len(_RENDERED) > 65536:
            _RENDERED.clear()
        text = _RENDERED[key] = _render_int(event_type, name, value)
    return text


_RENDERED: dict[tuple[str, str, int], str] = {}


def _render_int(event_type: str, name: str, value: int) -> str:
    ptype, info = param_meta(event_type, name)
    if ptype == "FD" and value == -100:
        return "AT_FDCWD"
    if ptype == "ERRNO" or (name in ("res", "fd") and ptype in ("FD", "PID", "INT64")):
        return errno_name(value) if value < 0 else str(value)
    if info in ("file_flags", "creat_flags", "openat2_flags"):
        return open_flags_string(value)
    if info in ("chmod_mode", "mknod_mode") or ptype == "MODE":
        return flags_string(value, MODE_FLAGS)
    if info == "execve_flags":  # no bit set: the number, as libsinsp prints an empty resolution
        return flags_string(value, EXECVE_FLAGS) or str(value)
    if info == "ptrace_requests":
        return PTRACE_REQUESTS.get(value, str(value))
    if info == "socket_families":
        return SOCKET_FAMILIES.get(value, str(value))
    if info == "bpf_commands":
        return BPF_COMMANDS.get(value, str(value))
    return str(value)


_META: dict[tuple[str, str], tuple[str, str]] = {
    (evt, pname): (ptype, info)
    for evt, params in EXIT_PARAMS.items() for pname, ptype, info in params
}


def param_meta(event_type: str, name: str) -> tuple[str, str]:
    """The ppm type and flag table of one exit-event parameter (``("", "")`` if unknown)."""
    return _META.get((event_type, name), ("", ""))


_HOSTNAME: list[str] = []


def hostname() -> str:
    """This machine's host name (``FALCO_HOSTNAME`` overrides it, as in Falco)."""
    if not _HOSTNAME:
        import os

        _HOSTNAME.append(os.environ.get("FALCO_HOSTNAME") or socket.gethostname())
    return _HOSTNAME[0]


def time_string(ts: int, *, date: bool = False, nanos: bool = True) -> str:
    """``evt.time`` (``16:17:57.881781397``) and ``evt.datetime`` renderings, local time."""
    secs, ns = divmod(ts, 1_000_000_000)
    tm = time.localtime(secs)
    text = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", tm)
    return f"{text}.{ns:09d}" if nanos else text


def iso8601(ts: int) -> str:
    """``evt.time.iso8601``: ``2016-08-04T16:17:57.881781397+0000`` (UTC)."""
    secs, ns = divmod(ts, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}+0000"
