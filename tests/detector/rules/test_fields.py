"""Falco's fields: lookup, and extraction with Falco's semantics over detector events."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from detector.events import ContainerInfo, Event, FdInfo, GroupInfo, ThreadInfo, UserInfo
from detector.rules.fields.registry import EVENT, FIELDS, FieldError, lookup, suggest

RULES_FIELDS = [
    "container.id", "container.image.repository", "container.privileged", "evt.arg.domain",
    "evt.arg.flags", "evt.arg.oldpath", "evt.arg.request", "evt.arg.target",
    "evt.is_open_read", "evt.is_open_write", "evt.num", "evt.rawres", "evt.res", "evt.type",
    "fd.connected", "fd.directory", "fd.filename", "fd.ip", "fd.l4proto", "fd.name",
    "fd.name_changed", "fd.nameraw", "fd.net", "fd.num", "fd.sip.name", "fd.snet", "fd.sport",
    "fd.type", "fd.typechar", "k8s.ns.name", "proc.aname", "proc.aname[2]", "proc.args",
    "proc.cmdline", "proc.cwd", "proc.duration", "proc.exe", "proc.exepath",
    "proc.is_exe_from_memfd", "proc.is_exe_upper_layer", "proc.name", "proc.pcmdline",
    "proc.pexe", "proc.pname", "proc.tty", "thread.cap_effective", "user.name", "user.uid",
    "evt.arg.path", "evt.arg.name", "evt.arg.newpath", "evt.arg.uid", "evt.arg.mode",
    "evt.arg.cmd", "syscall.type", "thread.cap_permitted", "proc.env", "proc.vpid", "fd.port",
    "fd.rnet", "fd.cnet", "fd.cip", "fd.cip.name", "fd.sockfamily", "evt.buffer",
    "evt.is_open_exec", "proc.is_vpgid_leader", "proc.vpgid.name", "proc.vpgid.exe",
    "proc.ppid.duration", "proc.aexe[2]", "k8s.pod.name", "container.mount.dest[/proc*]",
    "user.loginuid", "fd.types[0]", "evt.arg.res_or_fd", "evt.arg.filename",
]
OUTPUT_FIELDS = [
    "evt.args", "evt.arg.linkpath", "proc.sname", "proc.aexepath[2]", "proc.exe_ino.ctime",
    "proc.exe_ino.mtime", "proc.exe_ino.ctime_duration_proc_start", "user.loginname",
    "group.gid", "group.name", "container.start_ts", "fd.lport", "fd.rport", "fd.rip.name",
    "container.mounts", "evt.time", "evt.time.iso8601", "container.name",
    "container.image.tag",
]


def _split(text: str) -> tuple[str, str | None]:
    if "[" in text:
        name, _, arg = text.partition("[")
        return name, arg[:-1]
    return text, None


@pytest.mark.parametrize("text", RULES_FIELDS + OUTPUT_FIELDS)
def test_every_upstream_field_binds_to_an_extractor(text: str) -> None:
    name, arg = _split(text)
    bound = EVENT.bind(name, arg)
    assert bound.expr != "None", f"{text} has no extractor"


def test_lookup_is_longest_prefix_with_dot_arguments() -> None:
    assert lookup("proc.name") == (FIELDS["proc.name"], None)
    fdef, arg = lookup("evt.arg.flags") or (None, None)
    assert fdef is FIELDS["evt.arg"] and arg == "flags"
    fdef, arg = lookup("container.label.app.kubernetes") or (None, None)
    assert fdef is FIELDS["container.label"] and arg == "app.kubernetes"
    assert lookup("proc.nope") is None


def test_unknown_field_fails_with_a_suggestion() -> None:
    with pytest.raises(FieldError) as info:
        EVENT.bind("proc.nmae", None)
    assert "nonexistent field proc.nmae" in str(info.value)
    assert "proc.name" in info.value.hint
    assert suggest("fd.nmae") == "fd.name"


def test_field_argument_rules() -> None:
    with pytest.raises(FieldError):
        EVENT.bind("proc.name", "2")  # takes no argument
    with pytest.raises(FieldError):
        EVENT.bind("proc.aname", "x")  # ancestors are numbered
    with pytest.raises(FieldError, match="unknown event argument"):
        EVENT.bind("evt.arg.nosuchparam", None)
    assert EVENT.bind("evt.arg", "0").arg == "0"


@pytest.fixture()
def event() -> Event:
    init = ThreadInfo(tid=1, pid=1, comm="systemd", exe="/sbin/init", exepath="/usr/lib/systemd")
    shell = ThreadInfo(tid=50, pid=50, ppid=1, comm="bash", exe="-bash", exepath="/usr/bin/bash",
                       args=[], parent=init, sid=50, vpgid=50)
    ctr = ContainerInfo(id="3ad7b26ded6d", image_repository="docker.io/library/nginx",
                        privileged=True, labels={"io.kubernetes.pod.name": "web-0",
                                                 "io.kubernetes.pod.namespace": "shop"})
    proc = ThreadInfo(tid=77, pid=77, ppid=50, comm="3", exe="/proc/self/fd/3",
                      exepath="/memfd:x (deleted)", args=["-c", "id"], cwd="/tmp", tty=34816,
                      parent=shell, container=ctr, uid=0, euid=0, user=UserInfo(0, "root"),
                      group=GroupInfo(0, "root"), sid=50, vpgid=77, start_ts=1_000,
                      cap_effective=(1 << 21) | 1, exe_from_memfd=True, loginuid=-1)
    proc.fds = {0: FdInfo(0, "file", "/dev/pts/0"), 7: FdInfo(7, "ipv4", "x")}
    fd = FdInfo(3, "file", "/etc/shadow", "../etc/shadow", open_flags=0o2000002)
    return Event(num=9, ts=5_000, type="openat", tid=77, res=3, thread=proc, fd=fd,
                 args={"fd": 3, "dirfd": -100, "name": "../etc/shadow", "flags": 0o2000002,
                       "mode": 0})


def _x(text: str, ev: Event) -> object:
    name, arg = _split(text)
    return EVENT.bind(name, arg).extract(ev)


def test_process_fields_follow_falco(event: Event) -> None:
    assert _x("proc.name", event) == "3"  # the kernel's comm, not the exe's basename
    assert _x("proc.exe", event) == "/proc/self/fd/3"  # argv[0]
    assert _x("proc.args", event) == "-c id"
    assert _x("proc.cmdline", event) == "3 -c id"
    assert _x("proc.pname", event) == "bash"
    assert _x("proc.aname[2]", event) == "systemd"
    assert _x("proc.aname[0]", event) == "3"
    assert _x("proc.aname", event) == ["bash", "systemd"]  # any ancestor
    assert _x("proc.aname[5]", event) is None
    assert _x("proc.sname", event) == "bash"
    assert _x("proc.cwd", event) == "/tmp/"
    assert _x("proc.duration", event) == 4_000
    assert _x("proc.is_exe_from_memfd", event) is True
    assert _x("thread.cap_effective", event) == "CAP_CHOWN CAP_SYS_ADMIN"
    assert _x("user.name", event) == "root" and _x("user.uid", event) == 0


def test_event_and_fd_fields(event: Event) -> None:
    assert _x("evt.res", event) == "SUCCESS"
    event.res = -2
    assert _x("evt.res", event) == "ENOENT"
    assert _x("evt.rawres", event) == -2
    assert _x("evt.arg.flags", event) == "O_RDWR|O_CLOEXEC"
    assert _x("evt.is_open_read", event) is True and _x("evt.is_open_write", event) is True
    assert _x("fd.typechar", event) == "f"
    assert _x("fd.name", event) == "/etc/shadow"
    assert _x("fd.nameraw", event) == "../etc/shadow"
    assert _x("fd.directory", event) == "/etc" and _x("fd.filename", event) == "shadow"
    assert _x("fd.types", event) == ["file", "ipv4"]
    assert _x("evt.num", event) == 9


def test_container_fields(event: Event) -> None:
    assert _x("container.id", event) == "3ad7b26ded6d"
    assert _x("container.privileged", event) is True
    assert _x("k8s.pod.name", event) == "web-0" and _x("k8s.ns.name", event) == "shop"
    assert event.thread is not None
    event.thread.container = ContainerInfo()
    assert _x("container.id", event) == "host"
    assert _x("container.name", event) == "host"
    assert _x("k8s.ns.name", event) is None


def test_socket_fields_match_either_endpoint(event: Event) -> None:
    event.fd = FdInfo(5, "ipv4", "10.0.0.2:4000->1.2.3.4:443", cip="10.0.0.2", cport=4000,
                      sip="1.2.3.4", sport=443, l4proto="tcp")
    assert _x("fd.ip", event) == [ipaddress.ip_address("10.0.0.2"),
                                  ipaddress.ip_address("1.2.3.4")]
    assert _x("fd.sport", event) == 443 and _x("fd.port", event) == [4000, 443]
    assert _x("fd.typechar", event) == "4"


def test_missing_values_are_none() -> None:
    bare = Event(num=1, ts=0, type="close")
    for text in ("proc.name", "fd.name", "container.id", "user.name", "proc.aname",
                 "fd.ip", "evt.arg.fd", "proc.aname[1]"):
        assert _x(text, bare) is None, text


def test_field_table_is_self_contained() -> None:
    assert Path(__file__).resolve().is_file()
    assert len(FIELDS) > 250 and FIELDS["fd.num"].type == "INT64"
    assert FIELDS["proc.aname"].has("NO_RHS")


def test_path_fields_and_resolved_arguments() -> None:
    me = ThreadInfo(tid=3, pid=3, comm="ln", cwd="/tmp", user=UserInfo(33, "www-data"))
    ev = Event(num=2, ts=0, type="symlinkat", tid=3, res=0, thread=me,
               args={"res": 0, "target": "/etc/shadow", "linkdirfd": -100, "linkpath": "x"})
    assert _x("fs.path.source", ev) == "/etc/shadow"
    assert _x("fs.path.target", ev) == "/tmp/x" and _x("fs.path.targetraw", ev) == "x"
    assert _x("evt.arg.linkdirfd", ev) == "AT_FDCWD"
    assert _x("evt.args", ev) == "res=0 target=/etc/shadow linkdirfd=-100(AT_FDCWD) linkpath=x"
    setuid = Event(num=3, ts=0, type="setuid", res=0, thread=me, args={"res": 0, "uid": 33})
    assert _x("evt.arg.uid", setuid) == "www-data"  # uids render as user names
    ptrace = Event(num=4, ts=0, type="ptrace", res=0, args={"request": 0x4206, "pid": 9})
    assert _x("evt.arg.request", ptrace) == "PTRACE_SEIZE"
    sock = Event(num=5, ts=0, type="socket", res=4, args={"fd": 4, "domain": 17})
    assert _x("evt.arg.domain", sock) == "AF_PACKET"
