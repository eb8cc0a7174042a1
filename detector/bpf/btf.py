"""Kernel struct member offsets from BTF (``/sys/kernel/btf/vmlinux``), passed to BPF C as -D flags.

The BTF blob is a header (magic 0xEB9F, version, flags, hdr_len, then type_off/type_len and
str_off/str_len relative to the header's end), a type section (``struct btf_type``: name_off,
info = kind << 24 | vlen, size-or-type, followed by kind-specific data) and a string section.
Type ids count from 1 in section order. Members of structs and unions carry bit offsets (with
``kind_flag`` set, the low 24 bits). Anonymous members (name_off 0) are searched through, so
``sock_common.skc_daddr`` is found inside its anonymous unions.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass

from detector.errors import DetectorError

BTF_PATH = "/sys/kernel/btf/vmlinux"

# BTF kinds
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)

_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_MEMBER = struct.Struct("<III")


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int


class Btf:
    """A parsed BTF blob: type kinds and sizes, struct/union members, names."""

    def __init__(self, data: bytes) -> None:
        if len(data) < _HDR.size:
            raise DetectorError("BTF blob is too short", hint="check /sys/kernel/btf/vmlinux")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HDR.unpack_from(data)
        )
        if magic != 0xEB9F:
            raise DetectorError(
                f"not a BTF blob (magic {magic:#x})",
                hint="the kernel needs CONFIG_DEBUG_INFO_BTF=y",
            )
        self._types = memoryview(data)[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strs = bytes(data[hdr_len + str_off : hdr_len + str_off + str_len])
        self.kinds: list[int] = [0]
        self.sizes: list[int] = [0]  # size, or referenced type id for PTR/modifiers/ARRAY elem
        self._starts: list[int] = [0]
        self.by_name: dict[str, list[int]] = {}
        self.typedefs: dict[str, int] = {}
        self._parse()

    def _parse(self) -> None:
        buf = self._types
        pos, end = 0, len(buf)
        unpack = _TYPE.unpack_from
        while pos < end:
            name_off, info, size_type = unpack(buf, pos)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            self._starts.append(pos)
            self.kinds.append(kind)
            self.sizes.append(size_type)
            if kind in (STRUCT, UNION) and name_off:
                self.by_name.setdefault(self.string(name_off), []).append(len(self.kinds) - 1)
            elif kind == TYPEDEF and name_off:
                self.typedefs[self.string(name_off)] = len(self.kinds) - 1
            pos += _TYPE.size
            if kind in (INT, VAR, DECL_TAG):
                pos += 4
            elif kind == ARRAY:
                pos += 12
            elif kind in (STRUCT, UNION, DATASEC, ENUM64):
                pos += 12 * vlen
            elif kind in (ENUM, FUNC_PROTO):
                pos += 8 * vlen

    def string(self, off: int) -> str:
        end = self._strs.index(b"\0", off)
        return self._strs[off:end].decode()

    def members(self, type_id: int) -> list[Member]:
        pos = self._starts[type_id]
        _, info, _ = _TYPE.unpack_from(self._types, pos)
        kind_flag = info >> 31
        out = []
        for i in range(info & 0xFFFF):
            name_off, mtype, offset = _MEMBER.unpack_from(self._types, pos + 12 + 12 * i)
            bit = offset & 0xFFFFFF if kind_flag else offset
            out.append(Member(self.string(name_off) if name_off else "", mtype, bit))
        return out

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers."""
        while self.kinds[type_id] in _MODIFIERS:
            type_id = self.sizes[type_id]
        return type_id

    def struct_id(self, name: str) -> int:
        """The id of the complete (sized, with members) struct or union ``name``."""
        ids = self.by_name.get(name)
        if not ids:
            raise DetectorError(
                f"struct {name} is not in the kernel's BTF", hint="this kernel is not supported"
            )
        return max(ids, key=lambda i: self.sizes[i])

    def find_member(self, type_id: int, name: str) -> tuple[int, int] | None:
        """(byte offset, member type id) of ``name`` in a struct/union, through anonymous ones."""
        for m in self.members(type_id):
            if m.name == name:
                return m.bit_offset // 8, m.type_id
            if not m.name:
                inner = self.resolve(m.type_id)
                if self.kinds[inner] in (STRUCT, UNION):
                    found = self.find_member(inner, name)
                    if found is not None:
                        return m.bit_offset // 8 + found[0], found[1]
        return None

    def offset(self, path: str) -> int:
        """Byte offset of ``struct.member[.member...]`` (embedded members, not pointers)."""
        struct_name, *names = path.split(".")
        tid = self.struct_id(struct_name)
        total = 0
        for name in names:
            found = self.find_member(tid, name)
            if found is None:
                raise DetectorError(
                    f"{path}: no member {name} in the kernel's BTF",
                    hint="this kernel's struct layout is not supported",
                )
            total += found[0]
            tid = self.resolve(found[1])
        return total

    def has(self, path: str) -> bool:
        try:
            self.offset(path)
        except DetectorError:
            return False
        return True

    def size(self, struct_name: str) -> int:
        return self.sizes[self.struct_id(struct_name)]

    def tracepoint_id(self, name: str) -> int | None:
        """The BTF id a tp_btf program attaches by: the ``btf_trace_<name>`` typedef's."""
        return self.typedefs.get(f"btf_trace_{name}")


@functools.lru_cache(maxsize=4)
def load(path: str = BTF_PATH) -> Btf:
    """Parse the kernel's BTF (cached per path)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DetectorError(
            f"cannot read BTF at {path}: {exc.strerror}",
            hint="use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        ) from exc
    return Btf(data)


# -D name -> member path; alternatives separated by "|" (first one present wins).
OFFSETS: dict[str, str] = {
    "OFF_TASK_REAL_PARENT": "task_struct.real_parent",
    "OFF_TASK_TGID": "task_struct.tgid",
    "OFF_TASK_PID": "task_struct.pid",
    "OFF_TASK_COMM": "task_struct.comm",
    "OFF_TASK_LOGINUID": "task_struct.loginuid",
    "OFF_TASK_SESSIONID": "task_struct.sessionid",
    "OFF_TASK_SIGNAL": "task_struct.signal",
    "OFF_TASK_CRED": "task_struct.cred",
    "OFF_TASK_MM": "task_struct.mm",
    "OFF_TASK_FILES": "task_struct.files",
    "OFF_TASK_GROUP_LEADER": "task_struct.group_leader",
    "OFF_TASK_START_TIME": "task_struct.start_time",
    "OFF_TASK_START_BOOTTIME": "task_struct.start_boottime|task_struct.real_start_time",
    "OFF_TASK_VFORK_DONE": "task_struct.vfork_done",
    "OFF_TASK_THREAD_PID": "task_struct.thread_pid",
    "OFF_TASK_CGROUPS": "task_struct.cgroups",
    "OFF_SIGNAL_TTY": "signal_struct.tty",
    "OFF_TTY_INDEX": "tty_struct.index",
    "OFF_TTY_DRIVER": "tty_struct.driver",
    "OFF_DRIVER_MAJOR": "tty_driver.major",
    "OFF_DRIVER_MINOR_START": "tty_driver.minor_start",
    "OFF_CRED_UID": "cred.uid",
    "OFF_CRED_GID": "cred.gid",
    "OFF_CRED_EUID": "cred.euid",
    "OFF_CRED_EGID": "cred.egid",
    "OFF_CRED_CAP_INH": "cred.cap_inheritable",
    "OFF_CRED_CAP_PRM": "cred.cap_permitted",
    "OFF_CRED_CAP_EFF": "cred.cap_effective",
    "OFF_MM_EXE_FILE": "mm_struct.exe_file",
    "OFF_MM_ARG_START": "mm_struct.arg_start",
    "OFF_MM_ARG_END": "mm_struct.arg_end",
    "OFF_MM_ENV_START": "mm_struct.env_start",
    "OFF_MM_ENV_END": "mm_struct.env_end",
    "OFF_FILE_INODE": "file.f_inode",
    "OFF_FILE_DENTRY": "file.f_path.dentry",
    "OFF_FILE_MNT": "file.f_path.mnt",
    "OFF_FILE_PRIVATE": "file.private_data",
    "OFF_INODE_INO": "inode.i_ino",
    "OFF_INODE_SB": "inode.i_sb",
    "OFF_INODE_MODE": "inode.i_mode",
    "OFF_INODE_CTIME": "inode.i_ctime_sec|inode.__i_ctime.tv_sec|inode.i_ctime.tv_sec",
    "OFF_INODE_MTIME": "inode.i_mtime_sec|inode.__i_mtime.tv_sec|inode.i_mtime.tv_sec",
    "OFF_SB_MAGIC": "super_block.s_magic",
    "OFF_SB_DEV": "super_block.s_dev",
    "OFF_DENTRY_NAME": "dentry.d_name.name",
    "OFF_OVL_VFS_INODE": "ovl_inode.vfs_inode",
    "OFF_OVL_UPPER": "ovl_inode.__upperdentry",
    "OFF_FILES_FDT": "files_struct.fdt",
    "OFF_FDT_FD": "fdtable.fd",
    "OFF_FDT_MAX": "fdtable.max_fds",
    "OFF_SOCKET_SK": "socket.sk",
    "OFF_SK_FAMILY": "sock_common.skc_family",
    "OFF_SK_RCV_SADDR": "sock_common.skc_rcv_saddr",
    "OFF_SK_DADDR": "sock_common.skc_daddr",
    "OFF_SK_NUM": "sock_common.skc_num",
    "OFF_SK_DPORT": "sock_common.skc_dport",
    "OFF_SK_V6_DADDR": "sock_common.skc_v6_daddr",
    "OFF_SK_V6_RCV_SADDR": "sock_common.skc_v6_rcv_saddr",
    "OFF_SK_TYPE": "sock.sk_type",
    "OFF_SK_PROTOCOL": "sock.sk_protocol",
    "OFF_PID_LEVEL": "pid.level",
    "OFF_PID_NUMBERS": "pid.numbers",
    "OFF_REGS_ORIG_AX": "pt_regs.orig_ax",
    "OFF_REGS_DI": "pt_regs.di",
    "OFF_REGS_SI": "pt_regs.si",
    "OFF_REGS_DX": "pt_regs.dx",
    "OFF_REGS_R10": "pt_regs.r10",
    "OFF_REGS_R8": "pt_regs.r8",
    "OFF_REGS_R9": "pt_regs.r9",
    "OFF_TASK_TI_STATUS": "task_struct.thread_info.status",
    "OFF_CSS_SET_DFL_CGRP": "css_set.dfl_cgrp",
    "OFF_CGROUP_KN": "cgroup.kn",
    "OFF_KN_NAME": "kernfs_node.name",
    "OFF_KN_PARENT": "kernfs_node.__parent|kernfs_node.parent",
}


def offsets(btf: Btf | None = None) -> dict[str, int]:
    """Every offset the BPF programs use, by -D name; a missing optional member is -1."""
    btf = btf or load()
    out: dict[str, int] = {}
    for define, paths in OFFSETS.items():
        value = -1
        for path in paths.split("|"):
            if btf.has(path):
                value = btf.offset(path)
                break
        out[define] = value
    for required in ("OFF_TASK_REAL_PARENT", "OFF_TASK_TGID", "OFF_TASK_CRED"):
        if out[required] < 0:
            raise DetectorError(
                f"{OFFSETS[required]} not found in the kernel's BTF",
                hint="this kernel is not supported by the eBPF source",
            )
    out["SIZEOF_UPID"] = btf.size("upid") if "upid" in btf.by_name else 16
    regs = [out[f"OFF_REGS_{r}"] for r in ("DI", "SI", "DX", "R10", "R8", "R9", "ORIG_AX")]
    if min(regs) < 0 or max(regs) + 8 - min(regs) > 128:
        raise DetectorError(
            "struct pt_regs in the kernel's BTF has no x86-64 argument registers",
            hint="the eBPF source supports x86-64 kernels",
        )
    # One read of REGS_N u64 from REGS_LO covers the six argument registers and orig_ax.
    out["REGS_LO"] = min(regs)
    out["REGS_N"] = (max(regs) + 8 - min(regs)) // 8
    return out


def cflags(btf: Btf | None = None) -> list[str]:
    """The -D flags for the BPF C text."""
    if btf is None and not os.path.exists(BTF_PATH):
        raise DetectorError(
            f"{BTF_PATH} is missing", hint="use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        )
    return [f"-D{k}={v}" for k, v in offsets(btf).items()]
