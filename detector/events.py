"""The event interface shared by every event source and the rules engine.

An event source (eBPF, replay, a plugin) yields :class:`Event` objects. The system state
(threads, file descriptors, containers, users) is attached to the event by the source, so the
rules engine's field extractors are plain attribute reads and never look anything up.

Conventions, matching Falco's (see shared/reference/field-semantics.md):

* One event per syscall, at its exit (``dir == "<"``), carrying every parameter Falco's event
  table gives that event, under Falco's parameter names (``args["flags"]``, ``args["name"]``...).
  Values are ``int``, ``str`` or ``bytes``; flags are the raw integers.
* ``None`` means "the event does not have this value": every check on it is false.
* ``num`` starts at 1 and never repeats within a run (``never_true`` is ``evt.num=0``).
* Times are nanoseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Falco's fd.type names and their one-letter fd.typechar.
FD_TYPECHARS: dict[str, str] = {
    "file": "f",
    "directory": "d",
    "ipv4": "4",
    "ipv6": "6",
    "unix": "u",
    "pipe": "p",
    "event": "e",
    "signalfd": "s",
    "eventpoll": "l",
    "inotify": "i",
    "timerfd": "t",
    "netlink": "n",
    "bpf": "b",
    "userfaultfd": "u",
    "io_uring": "r",
    "memfd": "m",
    "pidfd": "P",
}


@dataclass(slots=True)
class ContainerInfo:
    """A container (or the host) a thread runs in."""

    id: str = "host"  # first 12 hex digits of the runtime id, or "host"
    full_id: str = ""
    type: str | None = None  # docker, podman, containerd, cri-o, host
    name: str | None = None
    image: str | None = None  # as the runtime reports it, e.g. "localhost/busybox:latest"
    image_repository: str | None = None
    image_tag: str | None = None
    image_id: str | None = None
    image_digest: str | None = None
    privileged: bool | None = None
    labels: dict[str, str] = field(default_factory=dict)
    start_ts: int | None = None
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (source, dest)
    # Kubernetes pod (from the CRI pod sandbox), None outside pods
    pod_name: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = None
    pod_sandbox_id: str | None = None  # full id
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_ip: str | None = None
    pod_cni_json: str | None = None

    @property
    def is_host(self) -> bool:
        return self.id == "host"


@dataclass(slots=True)
class UserInfo:
    """A user as seen from inside the thread's root (its container's /etc/passwd)."""

    uid: int
    name: str | None = None
    homedir: str | None = None
    shell: str | None = None


@dataclass(slots=True)
class GroupInfo:
    gid: int
    name: str | None = None


@dataclass(slots=True)
class FdInfo:
    """An open file descriptor: a file, directory, socket, pipe, memfd..."""

    num: int
    type: str = "file"  # a key of FD_TYPECHARS
    name: str = ""  # normalised absolute path, or "cip:cport->sip:sport" for sockets
    nameraw: str = ""  # the path exactly as the syscall passed it
    open_flags: int = 0
    dev: int | None = None
    ino: int | None = None
    # Sockets (None when not a socket).
    l4proto: str | None = None  # tcp, udp, icmp, raw
    cip: str | None = None  # client ip (the connecting end)
    cport: int | None = None
    sip: str | None = None  # server ip
    sport: int | None = None
    lip: str | None = None  # local end
    lport: int | None = None
    rip: str | None = None  # remote end
    rport: int | None = None
    is_server: bool | None = None  # role of this end: True for accepted/listening sockets
    connected: bool = False
    sockfamily: str | None = None  # ip, unix
    name_changed: bool = False  # the name changed with this event (connect on a reused fd)
    # Domain names of the endpoints (fd.cip.name ...), when a DNS cache knows them.
    cip_name: str | None = None
    sip_name: str | None = None
    lip_name: str | None = None
    rip_name: str | None = None

    @property
    def typechar(self) -> str:
        return FD_TYPECHARS.get(self.type, "o")


@dataclass(slots=True)
class ThreadInfo:
    """A thread (and its process) as the detector's state keeps it."""

    tid: int
    pid: int  # thread group id
    ppid: int = 0  # real parent's tgid
    comm: str = ""  # proc.name: the kernel's task comm after execve
    exe: str = ""  # proc.exe: argv[0]
    exepath: str = ""  # proc.exepath: resolved executable path
    args: list[str] = field(default_factory=list)  # argv[1:]
    cwd: str = "/"
    tty: int = 0  # controlling terminal device number, 0 for none
    sid: int = 0
    vpgid: int = 0
    loginuid: int = -1  # -1 (4294967295 in the kernel) when unset
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    user: UserInfo | None = None
    loginuser: UserInfo | None = None
    group: GroupInfo | None = None
    start_ts: int = 0  # clone time, ns since epoch (proc.duration counts from it)
    exec_ts: int = 0
    cap_effective: int = 0
    cap_permitted: int = 0
    cap_inheritable: int = 0
    exe_writable: bool = False
    exe_upper_layer: bool = False
    exe_from_memfd: bool = False
    exe_ino: int | None = None
    exe_ino_ctime: int | None = None
    exe_ino_mtime: int | None = None
    env: list[str] = field(default_factory=list)
    vpid: int | None = None  # the process's id in its pid namespace
    vtid: int | None = None  # the thread's id in its pid namespace
    is_vpid1: bool = False
    container: ContainerInfo = field(default_factory=ContainerInfo)
    parent: ThreadInfo | None = None  # the real parent's main thread, if known
    fds: dict[int, FdInfo] = field(default_factory=dict)

    def ancestors(self) -> list[ThreadInfo]:
        """Parent, grandparent, ... (proc.aname[1], proc.aname[2], ...), loop-safe."""
        out: list[ThreadInfo] = []
        seen = {id(self)}
        node = self.parent
        while node is not None and id(node) not in seen and len(out) < 64:
            out.append(node)
            seen.add(id(node))
            node = node.parent
        return out


@dataclass(slots=True)
class Event:
    """One event: a syscall exit (source ``syscall``) or a plugin event."""

    num: int
    ts: int
    type: str  # Falco's event name: "execve", "openat", "connect", ...
    tid: int = 0
    dir: str = "<"
    cpu: int = 0
    res: int | None = None  # raw return value (evt.rawres)
    args: dict[str, object] = field(default_factory=dict)
    thread: ThreadInfo | None = None
    fd: FdInfo | None = None  # the descriptor the event acts on or creates
    source: str = "syscall"
    plugin_data: bytes | None = None  # raw payload of a plugin event
    plugin_fields: dict[str, object] | None = None  # fields a plugin extracted for this event
    # Kernel-side context a source attaches for the state tracker (ppid, tty, sid, loginuid,
    # capabilities, cgroup, exe facts...); keys are documented in detector/sources. Rules never
    # read it: the state tracker turns it into ``thread`` and ``fd``.
    ctx: dict[str, object] | None = None
