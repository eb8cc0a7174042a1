"""BTF parsing: a blob built here (anonymous members, bitfields) and the running kernel's."""

from __future__ import annotations

import os
import struct

import pytest

from detector.bpf import btf
from detector.errors import DetectorError
from tests.realparts import need


class Blob:
    """A tiny BTF blob writer."""

    def __init__(self) -> None:
        self.strs = b"\0"
        self.types = b""
        self.count = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strs)
        self.strs += name.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, vlen: int, size: int, extra: bytes = b"",
            kind_flag: int = 0) -> int:  # fmt: skip
        self.types += struct.pack(
            "<III", self.s(name), kind_flag << 31 | kind << 24 | vlen, size
        ) + extra
        self.count += 1
        return self.count

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]],
               kind: int = btf.STRUCT, kind_flag: int = 0) -> int:  # fmt: skip
        extra = b"".join(struct.pack("<III", self.s(n), t, off) for n, t, off in members)
        return self.add(name, kind, len(members), size, extra, kind_flag)

    def bytes(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types),
                          len(self.strs))  # fmt: skip
        return hdr + self.types + self.strs


def test_offsets_through_anonymous_members_typedefs_and_bitfields() -> None:
    b = Blob()
    u32 = b.add("u32", btf.INT, 0, 4, struct.pack("<I", 32))
    inner = b.struct("", 8, [("a", u32, 0), ("b", u32, 32)])
    union = b.struct("", 8, [("", inner, 0), ("both", u32, 0)], kind=btf.UNION)
    td = b.add("inner_t", btf.TYPEDEF, 0, union)
    tp = b.add("btf_trace_inner", btf.TYPEDEF, 0, union)
    ptr = b.add("", btf.PTR, 0, u32)
    b.struct("outer", 32, [("x", u32, 0), ("", union, 64), ("named", td, 128),
                           ("flag", u32, 3 << 24 | 200), ("p", ptr, 192)],
             kind_flag=1)  # fmt: skip
    parsed = btf.Btf(b.bytes())
    assert parsed.offset("outer.x") == 0
    assert parsed.offset("outer.b") == 12  # inside an anonymous struct inside an anonymous union
    assert parsed.offset("outer.named.b") == 20  # through a typedef
    assert parsed.offset("outer.flag") == 25  # kind_flag: low 24 bits are the bit offset
    assert parsed.offset("outer.p") == 24
    assert parsed.tracepoint_id("inner") == tp  # the typedef a tp_btf program attaches by
    assert parsed.tracepoint_id("inner_t") is None
    with pytest.raises(DetectorError, match="no member nope"):
        parsed.offset("outer.nope")
    with pytest.raises(DetectorError, match="struct missing"):
        parsed.offset("missing.x")


def test_not_btf_is_an_error() -> None:
    with pytest.raises(DetectorError, match="not a BTF blob"):
        btf.Btf(b"\0" * 64)


def test_running_kernel_offsets() -> None:
    need(os.path.exists(btf.BTF_PATH), f"{btf.BTF_PATH} (a kernel with BTF)")
    offs = btf.offsets()
    assert offs["OFF_SK_DADDR"] == 0  # the first member of sock_common, on every kernel
    assert offs["OFF_TASK_PID"] + 4 == offs["OFF_TASK_TGID"]  # pid_t pid; pid_t tgid;
    assert offs["OFF_CRED_UID"] < offs["OFF_CRED_EUID"] < offs["OFF_CRED_CAP_EFF"]
    assert all(v >= 0 for k, v in offs.items() if k.startswith("OFF_TASK"))
    flags = btf.cflags()
    assert f"-DOFF_TASK_REAL_PARENT={offs['OFF_TASK_REAL_PARENT']}" in flags


def test_running_kernel_has_the_tracepoints_the_source_attaches_to() -> None:
    need(os.path.exists(btf.BTF_PATH), f"{btf.BTF_PATH} (a kernel with BTF)")
    kernel = btf.load()
    assert kernel.tracepoint_id("sys_exit") and kernel.tracepoint_id("sched_process_exit")
    assert btf.offsets()["REGS_N"] * 8 >= 72  # the six argument registers and orig_ax
