"""Decoding kernel records without a kernel, and the Python layout held against the C structs."""

from __future__ import annotations

import ctypes
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.events import Event
from detector.sources import decode as dec
from detector.sources.layout import K_VFORK
from detector.sources.syscall_nrs import NUMBERS
from detector.sources.syscalls import NR_PROCEXIT
from tests.detector.sources.decoders import NAMES, decoder
from tests.realparts import need

Decoder = Callable[..., Event]
BPF_DIR = Path(dec.__file__).parents[1] / "bpf"


@pytest.fixture(name="decode", params=NAMES)
def _decode(request: pytest.FixtureRequest) -> Decoder:
    """The record decoder, once per read loop (pure Python, compiled)."""
    return decoder(request.param)


def record(
    nr: int,
    ret: int,
    args: tuple[int, ...] = (0, 0, 0, 0, 0, 0),
    strs: tuple[bytes, ...] = (),
    sa: bytes = b"",
    *,
    proc: bytes = b"",
    tup: bytes = b"",
    ubuf: tuple[int, int, int] | None = None,
    pid: int = 42,
    tid: int = 43,
    marks: int = 0,
) -> bytes:
    lens = [len(s) for s in strs] + [0] * (3 - len(strs)) + [len(sa)]
    kind = (1 if proc else 0) | (2 if tup else 0) | (4 if ubuf else 0) | marks
    hdr = dec.HDR.pack(
        5_000, pid << 32 | tid, ret, *args, 1000 << 32 | 1001, nr, 7, *lens, kind, 0, 1,
        b"bash\0", *(ubuf or (0, 0, 0)),
    )  # fmt: skip
    return hdr + proc + tup + b"".join(strs) + sa


def sin(ip: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(ip)


def test_openat_record(decode: Decoder) -> None:
    raw = record(NUMBERS["openat"], 3, (0xFFFFFF9C, 0x7FFF, 0o1101, 0o644, 0, 0),
                 (b"/etc/shadow\0",))  # fmt: skip
    ev = decode(raw, 9, boot_to_epoch_ns=1_000_000)
    assert (ev.num, ev.ts, ev.type, ev.tid, ev.res, ev.dir) == (9, 1_005_000, "openat", 43, 3, "<")
    assert ev.args == {"fd": 3, "dirfd": -100, "name": "/etc/shadow", "flags": 0o1101,
                       "mode": 0o644}  # fmt: skip
    assert ev.ctx is not None
    assert (ev.ctx["pid"], ev.ctx["ppid"], ev.ctx["comm"]) == (42, 7, "bash")
    assert (ev.ctx["uid"], ev.ctx["gid"]) == (1001, 1000)
    assert ev.thread is None and ev.fd is None


def test_failed_open_keeps_errno_and_path(decode: Decoder) -> None:
    ev = decode(record(NUMBERS["open"], -2, (1, 0, 0, 0, 0, 0), (b"/nope\0",)), 1)
    assert ev.res == -2 and ev.args["fd"] == -2 and ev.args["name"] == "/nope"


def test_connect_with_tuple_and_sockaddr(decode: Decoder) -> None:
    tup = dec.TUPLE.pack(2, 1, 6, 40000, 443, 0, 7, socket.inet_aton("10.0.0.1") + b"\0" * 12,
                         socket.inet_aton("1.2.3.4") + b"\0" * 12)  # fmt: skip
    raw = record(NUMBERS["connect"], -115, (5, 0, 16, 0, 0, 0), sa=sin("1.2.3.4", 443), tup=tup)
    ev = decode(raw, 1)
    assert ev.args == {"res": -115, "tuple": "10.0.0.1:40000->1.2.3.4:443", "fd": 5,
                       "addr": "1.2.3.4:443"}  # fmt: skip
    assert ev.ctx is not None
    assert (ev.ctx["l4proto"], ev.ctx["sock_family"], ev.ctx["rip"]) == ("tcp", "ipv4", "1.2.3.4")


def test_sockaddr_families() -> None:
    v6 = struct.pack("<H", socket.AF_INET6) + struct.pack(">H", 80) + b"\0" * 4 + socket.inet_pton(
        socket.AF_INET6, "::1"
    )
    assert dec.sockaddr(v6) == {"family": "ipv6", "ip": "::1", "port": 80}
    unix = struct.pack("<H", socket.AF_UNIX) + b"/run/docker.sock\0"
    assert dec.sockaddr(unix) == {"family": "unix", "path": "/run/docker.sock"}
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0hidden"
    assert dec.sockaddr(abstract) == {"family": "unix", "path": "@hidden"}
    assert dec.sockaddr(b"\x01") is None


def test_execve_with_process_context(decode: Decoder) -> None:
    proc = dec.PROC.pack(1000, 3, 136, 2, 1, 0, 1000, 1000, 0, 0xFF, 0x3F, 777, 10, 20, 5, 1,
                         99, 4_000, b"memfd:x\0", b"libpod-ab12\0", b"libpod_parent\0", b"",
                         b"")  # fmt: skip
    raw = record(NUMBERS["execve"], 0, strs=(b"/usr/bin/ls\0", b"ls\0-la\0/tmp\0",
                                             b"A=1\0B=2\0"), proc=proc)  # fmt: skip
    ev = decode(raw, 3)
    assert ev.type == "execve" and ev.res == 0
    assert (ev.args["exe"], ev.args["args"], ev.args["filename"]) == ("ls", ["-la", "/tmp"],
                                                                     "/usr/bin/ls")  # fmt: skip
    assert ev.args["tty"] == dec.tty_dev(136, 2) == 34818  # /dev/pts/2
    assert ev.args["env"] == b"A=1\0B=2\0"
    assert ev.args["cap_effective"] == 0x3F and ev.args["exe_ino_ctime"] == 10_000_000_000
    assert ev.ctx is not None
    assert ev.ctx["exe_from_memfd"] and ev.ctx["exe_upper_layer"]
    assert ev.args["flags"] == 2 | 4
    assert (ev.ctx["loginuid"], ev.ctx["sid"], ev.ctx["vpid"]) == (1000, 3, 1)
    assert ev.ctx["cgroup"] == "0::/libpod_parent/libpod-ab12"
    assert ev.ctx["start_age"] == 1_000 and "vforked" not in ev.ctx  # started at 4,000 of 5,000


def test_a_vfork_childs_event_carries_its_process_context(decode: Decoder) -> None:
    """A kept event of a vfork child that has not exec'd (K_VFORK): the process context, the
    task's age at the event and the mark; a start time after the event tells no age."""
    proc = dec.PROC.pack(*([0] * 17), 5_001, *[b""] * 5)
    ev = decode(record(NUMBERS["dup2"], 1, (3, 1, 0, 0, 0, 0), proc=proc, marks=K_VFORK), 1)
    assert ev.type == "dup2" and ev.ctx is not None
    assert ev.ctx["vforked"] is True and "cap_effective" in ev.ctx and "start_age" not in ev.ctx


def test_clone3_flags_from_user_struct(decode: Decoder) -> None:
    ev = decode(record(NUMBERS["clone3"], 55, proc=dec.PROC.pack(*([0] * 18), *[b""] * 5),
                           ubuf=(0x10000 | 0x100, 0, 0)), 1)  # fmt: skip
    assert ev.args["flags"] == 0x10100 and ev.ctx is not None and ev.ctx["child_tid"] == 55


def test_rename_symlinkat_and_pipe(decode: Decoder) -> None:
    ev = decode(record(NUMBERS["renameat2"], 0, (0xFFFFFF9C, 1, 3, 2, 1, 0),
                           (b"a\0", b"b\0")), 1)  # fmt: skip
    assert ev.args == {"res": 0, "olddirfd": -100, "oldpath": "a", "newdirfd": 3,
                       "newpath": "b", "flags": 1}  # fmt: skip
    ev = decode(record(NUMBERS["symlinkat"], 0, (0, 4, 1, 0, 0, 0), (b"/etc\0", b"l\0")), 1)
    assert ev.args == {"res": 0, "target": "/etc", "linkdirfd": 4, "linkpath": "l"}
    ev = decode(record(NUMBERS["pipe2"], 0, (0, 0o2000000, 0, 0, 0, 0),
                           ubuf=(6 << 32 | 5, 0, 0)), 1)  # fmt: skip
    assert (ev.args["fd1"], ev.args["fd2"], ev.args["flags"]) == (5, 6, 0o2000000)


def test_openat2_with_an_unreadable_how_struct(decode: Decoder) -> None:
    """Any process can pass a bad ``how`` pointer: the event still decodes (no flags known)."""
    ev = decode(record(NUMBERS["openat2"], -14, (0xFFFFFF9C, 0, 1, 24, 0, 0), (b"/x\0",)), 1)
    assert (ev.res, ev.args["name"], ev.args["flags"], ev.args["resolve"]) == (-14, "/x", 0, 0)


def test_module_and_procexit_records(decode: Decoder) -> None:
    ev = decode(record(NUMBERS["finit_module"], -38, (4, 0, 0, 0, 0, 0), (b"x=1\0",)), 1)
    assert ev.type == "finit_module" and ev.res == -38
    assert (ev.args["fd"], ev.args["uargs"]) == (4, "x=1")
    ev = decode(record(NR_PROCEXIT, 0), 2)
    assert ev.type == "procexit"


@pytest.mark.parametrize(
    "struct_name,cls",
    [("hdr", dec.Hdr), ("proc_ctx", dec.ProcCtx), ("tuple", dec.Tuple)],
)
def test_layout_matches_the_c_structs(
    struct_name: str, cls: type[ctypes.Structure], tmp_path: Path
) -> None:
    """Compile events.h with the host C compiler and compare every member's offset."""
    cc = shutil.which("gcc") or shutil.which("cc")
    need(cc is not None, "a C compiler (gcc)")
    assert cc is not None
    fields = [f[0] for f in cls._fields_]
    prints = "".join(
        f'printf("{f} %zu\\n", offsetof(struct {struct_name}, {f}));' for f in fields
    )
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n"
        "typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;\n"
        "typedef int64_t s64;\n"
        f'#include "{BPF_DIR / "events.h"}"\n'
        f'int main(void) {{ {prints} printf("sizeof %zu\\n", sizeof(struct {struct_name})); '
        "return 0; }\n"
    )
    exe = tmp_path / "layout"
    subprocess.run([cc, "-o", str(exe), str(src)], check=True)
    out = dict(line.split() for line in subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True).stdout.splitlines())  # fmt: skip
    for f in fields:
        assert int(out[f]) == getattr(cls, f).offset, f
    assert int(out["sizeof"]) == ctypes.sizeof(cls)
    packed = {"hdr": dec.HDR, "proc_ctx": dec.PROC, "tuple": dec.TUPLE}[struct_name]
    assert packed.size == ctypes.sizeof(cls)


def test_spec_bits_match_the_c_header() -> None:
    """The bit positions syscalls.py packs are the ones events.h reads."""
    from detector.sources import syscalls as sc

    text = (BPF_DIR / "events.h").read_text()
    for name in ("S_STR0", "S_STR1", "S_STR2", "S_SA", "S_SALEN", "S_UBUF", "NR_PROCEXIT",
                 "SPEC_PROCEXIT", "S_DROPCAT"):  # fmt: skip
        assert f"#define {name} {getattr(sc, name)}" in text, name
    for name in ("F_SALEN_PTR", "F_MSGHDR", "F_TUPLE_ARG0", "F_TUPLE_RET", "F_PROC", "F_EXEC",
                 "F_ENABLED", "F_HIST"):  # fmt: skip
        bit = getattr(sc, name).bit_length() - 1
        assert f"#define {name} (1u << {bit})" in text, name
