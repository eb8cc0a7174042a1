"""What the kernel source captures per syscall, and which syscalls a ruleset needs.

``SPECS`` is the one table both sides use: :func:`spec_word` packs an entry into the u32 the
BPF programs read from their ``spec`` map (bits in ``detector/bpf/events.h``), and
``detector/sources/decode.py`` turns the record back into Falco's parameters.
:func:`select_syscalls` is Falco's adaptive syscall selection (``base_syscalls``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from detector.errors import DetectorError
from detector.sources.syscall_nrs import NUMBERS

# Bit layout of a spec word (detector/bpf/events.h).
S_STR0, S_STR1, S_STR2, S_SA, S_SALEN, S_UBUF = 0, 3, 6, 9, 12, 17
F_SALEN_PTR = 1 << 15
F_MSGHDR = 1 << 16
F_TUPLE_ARG0 = 1 << 20
F_TUPLE_RET = 1 << 21
F_HIST = 1 << 29  # events.h: the dup family's tuple is the socket's history, if it has one
F_PROC = 1 << 22
F_EXEC = 1 << 23
F_RAW_HOOK = 1 << 24
F_ENABLED = 1 << 25
S_DROPCAT = 26
# Falco's drop categories (n_drops_buffer_<category>), in the order of the kernel's counters.
DROP_CATEGORIES = ("clone_fork_exit", "execve_exit", "connect_exit", "open_exit",
                   "dir_file_exit", "other_interest_exit", "close_exit", "proc_exit")  # fmt: skip
_CATEGORY_OF = {
    **dict.fromkeys(("clone", "clone3", "fork", "vfork"), 0),
    **dict.fromkeys(("execve", "execveat"), 1),
    "connect": 2,
    **dict.fromkeys(("open", "openat", "openat2", "creat"), 3),
    **dict.fromkeys(("mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
                     "renameat2", "link", "linkat", "symlink", "symlinkat", "chdir", "fchdir",
                     "chroot"), 4),
    "close": 6,
    "procexit": 7,
}
NR_PROCEXIT = 1001
SPEC_PROCEXIT = 489


@dataclass(frozen=True, slots=True)
class Spec:
    """What to capture for one syscall (argument indexes count from 0)."""

    name: str  # Falco's event name (== the syscall's name)
    strs: tuple[int, ...] = ()  # user strings, at most 3 (for execve: the file name)
    sockaddr: tuple[int, int] | None = None  # (address arg, length arg)
    salen_ptr: bool = False  # the length arg points to the length (accept)
    msghdr: bool = False  # the address arg is a struct msghdr * (sendmsg/recvmsg)
    ubuf: int | None = None  # read 24 bytes of user memory this arg points to
    tuple_from: str | None = None  # "arg0" or "ret": socket tuple of that fd, from the kernel
    proc: bool = False  # full process context (creds, tty, login uid, exe facts)
    exec: bool = False  # execve family: file name, argv and env of the new image from mm
    hist: bool = False  # the tuple of arg0's socket is its history when it has one (kf_hist)


# One entry per syscall the source decodes: a table, read top to bottom (not a function).
_TABLE: tuple[Spec, ...] = (
    Spec("execve", strs=(0,), proc=True, exec=True),
    Spec("execveat", strs=(1,), proc=True, exec=True),
    Spec("clone", proc=True),
    Spec("clone3", ubuf=0, proc=True),
    Spec("fork", proc=True),
    Spec("vfork", proc=True),
    Spec("open", strs=(0,)),
    Spec("openat", strs=(1,)),
    Spec("openat2", strs=(1,), ubuf=2),
    Spec("creat", strs=(0,)),
    Spec("connect", sockaddr=(1, 2), tuple_from="arg0"),
    Spec("accept", sockaddr=(1, 2), salen_ptr=True, tuple_from="ret"),
    Spec("accept4", sockaddr=(1, 2), salen_ptr=True, tuple_from="ret"),
    Spec("bind", sockaddr=(1, 2), tuple_from="arg0", hist=True),
    Spec("listen", tuple_from="arg0", hist=True),
    Spec("socket", tuple_from="ret"),
    Spec("socketpair", ubuf=3),
    Spec("sendto", sockaddr=(4, 5), tuple_from="arg0"),
    Spec("sendmsg", sockaddr=(1, 1), msghdr=True, tuple_from="arg0"),
    Spec("recvfrom", sockaddr=(4, 5), salen_ptr=True, tuple_from="arg0"),
    Spec("recvmsg", sockaddr=(1, 1), msghdr=True, tuple_from="arg0"),
    Spec("shutdown"),
    Spec("dup", tuple_from="arg0", hist=True),
    Spec("dup2", tuple_from="arg0", hist=True),
    Spec("dup3", tuple_from="arg0", hist=True),
    Spec("fcntl", tuple_from="arg0", hist=True),
    Spec("close"),
    Spec("pipe", ubuf=0),
    Spec("pipe2", ubuf=0),
    Spec("eventfd"),
    Spec("eventfd2"),
    Spec("signalfd4"),
    Spec("timerfd_create"),
    Spec("inotify_init1"),
    Spec("epoll_create1"),
    Spec("symlink", strs=(0, 1)),
    Spec("symlinkat", strs=(0, 2)),
    Spec("link", strs=(0, 1)),
    Spec("linkat", strs=(1, 3)),
    Spec("unlink", strs=(0,)),
    Spec("unlinkat", strs=(1,)),
    Spec("rename", strs=(0, 1)),
    Spec("renameat", strs=(1, 3)),
    Spec("renameat2", strs=(1, 3)),
    Spec("mkdir", strs=(0,)),
    Spec("mkdirat", strs=(1,)),
    Spec("rmdir", strs=(0,)),
    Spec("chmod", strs=(0,)),
    Spec("fchmod"),
    Spec("fchmodat", strs=(1,)),
    Spec("setuid"),
    Spec("setgid"),
    Spec("setreuid"),
    Spec("setregid"),
    Spec("setresuid"),
    Spec("setresgid"),
    Spec("capset", proc=True),
    Spec("setsid"),
    Spec("setpgid"),
    Spec("chdir", strs=(0,)),
    Spec("fchdir"),
    Spec("chroot", strs=(0,)),
    Spec("ptrace"),
    Spec("memfd_create", strs=(0,)),
    Spec("mount", strs=(0, 1, 2)),
    Spec("umount2", strs=(0,)),
    Spec("init_module", strs=(2,)),
    Spec("finit_module", strs=(1,)),
    Spec("bpf"),
    Spec("userfaultfd"),
    Spec("prctl"),
    Spec("setns"),
    Spec("unshare"),
    Spec("pidfd_open"),
    Spec("pidfd_getfd"),
)


SPECS: dict[str, Spec] = {sp.name: sp for sp in _TABLE}
# Event names beyond syscalls that the source produces.
EXTRA_EVENTS = frozenset({"procexit"})
BY_NR: dict[int, Spec] = {NUMBERS[n]: sp for n, sp in SPECS.items()}


def spec_word(spec: Spec, *, enabled: bool, raw_hook: bool = False) -> int:
    """The u32 the BPF programs read for this syscall (``raw_hook``: the raw sys_exit hook
    takes it, as it has no tracepoint of its own or one hook serves every syscall)."""
    word = 0
    for shift, idx in zip((S_STR0, S_STR1, S_STR2), spec.strs, strict=False):
        word |= (idx + 1) << shift
    if spec.sockaddr is not None:
        word |= (spec.sockaddr[0] + 1) << S_SA | (spec.sockaddr[1] + 1) << S_SALEN
    if spec.salen_ptr:
        word |= F_SALEN_PTR
    if spec.msghdr:
        word |= F_MSGHDR
    if spec.ubuf is not None:
        word |= (spec.ubuf + 1) << S_UBUF
    if spec.tuple_from == "arg0":
        word |= F_TUPLE_ARG0
    elif spec.tuple_from == "ret":
        word |= F_TUPLE_RET
    if spec.hist:
        word |= F_HIST
    if spec.proc:
        word |= F_PROC
    if spec.exec:
        word |= F_EXEC
    if raw_hook:
        word |= F_RAW_HOOK
    if enabled:
        word |= F_ENABLED
    word |= _CATEGORY_OF.get(spec.name, 5) << S_DROPCAT
    return word


# Falco's "modifies state" set (libsinsp sinsp_state_sc_set), limited to what this source
# decodes, and the minimal set `base_syscalls.repair: true` adds.
STATE_SET = frozenset(
    {
        "accept", "accept4", "bind", "capset", "chdir", "chroot", "clone", "clone3", "close",
        "connect", "creat", "dup", "dup2", "dup3", "epoll_create1", "eventfd", "eventfd2",
        "execve", "execveat", "fchdir", "fcntl", "fork", "inotify_init1", "memfd_create",
        "open", "openat", "openat2", "pidfd_getfd", "pidfd_open", "pipe", "pipe2", "prctl",
        "recvfrom", "recvmsg", "sendmsg", "sendto", "setgid", "setpgid", "setregid",
        "setresgid", "setresuid", "setreuid", "setsid", "setuid", "shutdown", "signalfd4",
        "socket", "socketpair", "timerfd_create", "userfaultfd", "vfork", "procexit",
    }
)  # fmt: skip
REPAIR_ALWAYS = frozenset(
    {
        "clone", "clone3", "fork", "vfork", "execve", "execveat", "chdir", "fchdir", "chroot",
        "capset", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
        "setsid", "setpgid", "procexit",
    }
)  # fmt: skip
NETWORK = frozenset(
    {"connect", "accept", "accept4", "bind", "listen", "sendto", "sendmsg", "recvfrom",
     "recvmsg", "socket", "socketpair", "shutdown"}
)  # fmt: skip
FD_EVENTS = frozenset(
    {"open", "openat", "openat2", "creat", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl",
     "memfd_create", "eventfd", "eventfd2", "signalfd4", "timerfd_create", "inotify_init1",
     "epoll_create1", "pidfd_open", "pidfd_getfd", "userfaultfd"} | NETWORK
)  # fmt: skip
SUPPORTED = frozenset(SPECS) | EXTRA_EVENTS


def select_syscalls(
    rule_events: Iterable[str],
    *,
    custom_set: Iterable[str] = (),
    repair: bool = False,
    all_syscalls: bool = False,
) -> frozenset[str]:
    """The event types to capture: rules' types plus state (Falco's ``base_syscalls``).

    ``rule_events`` are the event types the loaded rules can match. A positive ``custom_set``
    replaces the state set; ``!name`` entries are removed at the end; ``repair`` uses the
    minimal state set instead; ``all_syscalls`` selects everything this source decodes.
    ``procexit`` is always on, so the thread table cannot leak. Unknown names are ignored
    (the rules may name events this source does not produce); a custom name that is no
    syscall at all is an error.
    """
    rules = {e for e in rule_events if e in SUPPORTED}
    positive: set[str] = set()
    negative: set[str] = set()
    for raw in custom_set:
        name = raw.strip()
        target = negative if name.startswith("!") else positive
        name = name.lstrip("!")
        if name not in NUMBERS and name not in EXTRA_EVENTS:
            raise DetectorError(
                f"base_syscalls.custom_set: unknown syscall {name!r}",
                hint="use syscall names such as openat, connect or execve",
            )
        target.add(name)
    if all_syscalls:
        chosen = set(SUPPORTED)
    elif positive:
        chosen = rules | (positive & SUPPORTED)
    elif repair:
        chosen = rules | REPAIR_ALWAYS
        if rules & NETWORK:
            chosen |= {"socket", "accept", "accept4", "bind", "connect", "close"}
        if rules & FD_EVENTS:
            chosen |= {"close", "dup", "dup2", "dup3", "fcntl"}
    else:
        chosen = rules | STATE_SET
    chosen -= negative
    chosen.add("procexit")
    return frozenset(chosen)
