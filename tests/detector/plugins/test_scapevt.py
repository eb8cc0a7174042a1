"""The libscap records of syscall events, checked against libs' layouts (``event_table.c``,
``ppm_events_public.h``): header, event code, parameter count, u16 lengths, each type's bytes."""

from __future__ import annotations

import socket
import struct

import pytest

from detector.events import Event, FdInfo, ThreadInfo
from detector.plugins.scapevt import clone_flags, encode, open_flags, scap_record

# (event, libs' exit event code, libs' parameter count)
LIBS_EVENTS = [("execve", 293, 31), ("execveat", 331, 30), ("clone", 223, 21),
               ("clone3", 335, 21), ("fork", 225, 21), ("vfork", 227, 21), ("open", 3, 6),
               ("openat", 307, 7), ("openat2", 327, 8), ("creat", 59, 6), ("close", 5, 2),
               ("connect", 23, 4), ("accept", 247, 5), ("accept4", 389, 6),
               ("socket", 19, 5), ("bind", 21, 3), ("dup", 367, 2), ("dup2", 363, 3),
               ("dup3", 365, 4), ("chdir", 95, 2), ("fchdir", 97, 2), ("procexit", 186, 5),
               ("unlinkat", 303, 4), ("pipe2", 393, 5), ("setns", 241, 3)]


def _decode(raw: bytes) -> tuple[tuple[int, int, int, int, int], list[bytes]]:
    """A record the way a plugin reads it: header, nparams u16 lengths, the parameters."""
    head = struct.unpack_from("<QQIHI", raw)
    n = head[4]
    lens = struct.unpack_from(f"<{n}H", raw, 26)
    params, off = [], 26 + 2 * n
    for length in lens:
        params.append(raw[off:off + length])
        off += length
    assert off == head[2] == len(raw)  # the lengths add up to the header's len
    return head, params


@pytest.mark.parametrize(("etype", "code", "nparams"), LIBS_EVENTS)
def test_each_covered_event_has_libs_code_and_parameter_count(etype: str, code: int,
                                                              nparams: int) -> None:
    head, params = _decode(encode(Event(num=1, ts=9, type=etype, tid=42, res=0)))
    assert head == (9, 42, head[2], code, nparams)
    assert all(p == b"" for p in params)  # nothing known: empty parameters, as libs writes


def test_execve_exit_parameters() -> None:
    ev = Event(num=1, ts=1, type="execve", tid=50, res=0, args={
        "res": 0, "exe": "/bin/cat", "args": ["a b", "-n"], "tid": 50, "pid": 50, "ptid": 7,
        "cwd": None, "comm": "cat", "loginuid": -1, "uid": 1000, "flags": 1,
        "env": b"A=1\0B=2\0", "filename": "/usr/bin/cat"})
    ev.thread = ThreadInfo(tid=50, pid=50, cwd="/home/u", vpgid=3)
    _, p = _decode(encode(ev))
    assert p[0] == bytes(8)  # res: PT_ERRNO, s64
    assert p[1] == b"/bin/cat\0"  # exe: PT_CHARBUF, nul-terminated
    assert p[2] == b"a b\0-n\0"  # args: argv[1:], each nul-terminated
    assert [struct.unpack("<q", p[i])[0] for i in (3, 4, 5)] == [50, 50, 7]  # PT_PID s64
    assert p[6] == b"/home/u\0"  # cwd: from the thread, as the driver reads it from the task
    assert p[13] == b"cat\0" and p[15] == b"A=1\0B=2\0"
    assert p[17] == struct.pack("<q", 3)  # vpgid from the thread
    assert p[18] == b"\xff\xff\xff\xff"  # loginuid: PT_UID u32, -1 as libs' "no value"
    assert p[19] == struct.pack("<I", 1)  # flags: PPM_EXE_WRITABLE
    assert p[26] == struct.pack("<I", 1000)  # uid: PT_UID
    assert p[30] == b"/usr/bin/cat\0"  # filename: PT_FSPATH
    assert p[7] == b"" and p[14] == b""  # fdlimit, cgroups: the detector has none


def test_openat_exit_flags_and_mode_take_libs_bits() -> None:
    ev = Event(num=1, ts=1, type="openat", tid=5, res=3, args={
        "fd": 3, "dirfd": -100, "name": "rel/x", "flags": 0o1 | 0o100 | 0o1000 | 0o2000000,
        "mode": 0o100644})
    ev.fd = FdInfo(num=3, dev=0x803, ino=1234)
    _, p = _decode(encode(ev))
    assert p[0] == struct.pack("<q", 3) and p[1] == struct.pack("<q", -100)  # PT_FD s64
    assert p[2] == b"rel/x\0"  # PT_FSRELPATH: as passed
    ppm = (1 << 1) | (1 << 2) | (1 << 8) | (1 << 12)  # WRONLY CREAT TRUNC CLOEXEC
    assert struct.unpack("<I", p[3])[0] == ppm
    assert struct.unpack("<I", p[4])[0] == 0o644  # mode with O_CREAT: permission bits
    assert p[5] == struct.pack("<I", 0x803) and p[6] == struct.pack("<Q", 1234)  # from the fd
    no_creat = Event(num=2, ts=1, type="openat", tid=5, res=3,
                     args={"fd": 3, "name": "/x", "flags": 0, "mode": 0o644})
    _, q = _decode(encode(no_creat))
    assert struct.unpack("<I", q[3])[0] == 1 and q[4] == bytes(4)  # RDONLY; no mode


def test_flag_conversions() -> None:
    assert open_flags(0) == 1 and open_flags(0o2) == 3  # PPM_O_RDONLY, PPM_O_RDWR
    assert open_flags(0o4000 | 0o200000) == (1 << 0) | (1 << 6) | (1 << 10) | (1 << 13)
    threads = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000  # VM FS FILES SIGHAND THREAD
    assert clone_flags(threads) == (1 << 15) | (1 << 1) | (1 << 0) | (1 << 11) | (1 << 13)
    assert clone_flags(0x20000000 | 0x4000) == (1 << 6) | (1 << 27)  # NEWPID, VFORK


def test_clone_exit_takes_the_callers_exe_and_args() -> None:
    ev = Event(num=1, ts=1, type="clone", tid=8, res=9, args={
        "res": 9, "exe": None, "args": None, "tid": 8, "pid": 8, "flags": 0x10000 | 0x100})
    ev.thread = ThreadInfo(tid=8, pid=8, exe="bash", args=["-c", "x"], cwd="/")
    ev.ctx = {"cgroup": "0::/system.slice/docker-ab12.scope"}
    _, p = _decode(encode(ev))
    assert p[0] == struct.pack("<q", 9) and p[1] == b"bash\0" and p[2] == b"-c\0x\0"
    assert p[6] == b"/\0" and struct.unpack("<I", p[15])[0] == (1 << 13) | (1 << 15)
    # cgroups: libs' subsystems, each ``name=path`` nul-terminated (what a container plugin
    # parses for the container id)
    path = b"/system.slice/docker-ab12.scope"
    assert p[14] == b"".join(s + b"=" + path + b"\0" for s in (b"cpuset", b"cpu", b"cpuacct",
                                                              b"io", b"memory"))
    in_ns = Event(num=2, ts=1, type="clone", tid=8, res=0,
                  args={"res": 0, "tid": 8, "vtid": 1, "flags": 0x11})
    assert struct.unpack("<I", _decode(encode(in_ns))[1][15])[0] & (1 << 29)  # CHILD_IN_PIDNS
    ev.ctx = {}  # the root cgroup: the eBPF source sets no path
    assert _decode(encode(ev))[1][14].startswith(b"cpuset=/\0cpu=/\0")


def test_socket_parameters() -> None:
    v4 = _decode(encode(Event(num=1, ts=1, type="connect", tid=1, res=0, args={
        "res": 0, "tuple": "10.0.0.1:40000->10.0.0.2:80", "fd": 4, "addr": "10.0.0.2:80"})))[1]
    ip1, ip2 = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
    # PT_SOCKTUPLE: family, source ip and port, destination ip and port (ports host order)
    assert v4[1] == b"\x02" + ip1 + struct.pack("<H", 40000) + ip2 + struct.pack("<H", 80)
    assert v4[3] == b"\x02" + ip2 + struct.pack("<H", 80)  # PT_SOCKADDR
    v6 = _decode(encode(Event(num=2, ts=1, type="connect", tid=1, res=0, args={
        "res": 0, "tuple": "::1:5000->::1:443", "fd": 4, "addr": "::1:443"})))[1]
    lo6 = socket.inet_pton(socket.AF_INET6, "::1")
    assert len(v6[1]) == 37 and v6[1][:1] == b"\x0a" and v6[1][19:35] == lo6
    assert v6[3] == b"\x0a" + lo6 + struct.pack("<H", 443)
    ux = Event(num=3, ts=1, type="connect", tid=1, res=0,
               args={"res": 0, "tuple": None, "fd": 4, "addr": "/run/x.sock"})
    ux.fd = FdInfo(num=4, type="unix", name="/run/x.sock")
    p = _decode(encode(ux))[1]
    assert p[1] == b"\x01" + bytes(16) + b"/run/x.sock\0"  # family, two pointers, path
    assert p[3] == b"\x01/run/x.sock\0"


def test_events_without_their_own_event_are_a_generic_header() -> None:
    head, params = _decode(encode(Event(num=1, ts=3, type="getpid", tid=2, res=2)))
    assert head[3:] == (1, 0) and params == []  # PPME_GENERIC_X, no parameters


def test_a_long_value_is_cut_to_a_u16_length_and_stays_terminated() -> None:
    name = "/" + "a" * 70000
    _, p = _decode(encode(Event(num=1, ts=1, type="chdir", tid=1, res=0,
                                args={"res": 0, "path": name})))
    assert len(p[1]) == 0xFFFF and p[1].endswith(b"a\0")


def test_undecodable_and_odd_text_is_encoded_not_raised() -> None:
    raw = b"/tmp/\xff\xfe"
    escaped = raw.decode("utf-8", "surrogateescape")  # how the eBPF source decodes paths
    p = _decode(encode(Event(num=1, ts=1, type="chdir", tid=1, res=0,
                             args={"res": 0, "path": escaped})))[1]
    assert p[1] == raw + b"\0"  # the kernel's bytes again
    odd = _decode(encode(Event(num=2, ts=1, type="chdir", tid=1, res=0,
                               args={"res": 0, "path": "/x\ud800"})))[1]
    assert odd[1] == b"/x?\0"
    wrong = _decode(encode(Event(num=3, ts=1, type="close", tid=1, res=0,
                                 args={"res": "0", "fd": None})))[1]
    assert wrong == [b"", b""]  # a value of the wrong type is an empty parameter


def test_one_encoding_per_event() -> None:
    ev = Event(num=1, ts=1, type="close", tid=1, res=0, args={"res": 0, "fd": 3})
    first = scap_record(ev)
    assert scap_record(ev) is first  # every plugin's parse and extraction share it
    other = Event(num=2, ts=1, type="close", tid=1, res=0, args={"res": 0, "fd": 4})
    assert scap_record(other) != first


def test_every_event_the_ebpf_source_produces_has_its_own_record() -> None:
    from detector.rules.fields.eventtable import EXIT_PARAMS
    from detector.sources.syscalls import BY_NR

    for name in {sp.name for sp in BY_NR.values()} | {"procexit"}:
        head, params = _decode(encode(Event(num=1, ts=1, type=name, tid=1, res=0)))
        assert head[3] != 1, name  # not the generic event
        assert len(params) == len(EXIT_PARAMS.get(name, ())) or name == "procexit"
