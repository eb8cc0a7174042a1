"""The bpf(2) calls BCC 0.26 cannot make: load and attach a BTF raw tracepoint (tp_btf) program.

``union bpf_attr`` is declared with ctypes (``ProgLoadAttr``, ``RawTracepointOpenAttr``: the
members of ``BPF_PROG_LOAD`` and ``BPF_RAW_TRACEPOINT_OPEN`` up to the last one used), and a
test holds their offsets against the system's ``<linux/bpf.h>``. The bpf(2) syscall number is
per architecture (``SYS_BPF``); an architecture not in the table is an error, not a guess.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

from detector.errors import DetectorError

# bpf(2)'s number per architecture (the kernel's syscall tables).
SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_RAW_TP = 23
LOG_SIZE = 1 << 22  # the verifier's log, asked for only when a load fails
BPF_ATTR_SIZE = 144  # sizeof(union bpf_attr) in the uapi headers this was written against


class ProgLoadAttr(ctypes.Structure):
    """``union bpf_attr`` for ``BPF_PROG_LOAD``, up to ``attach_btf_id``."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
        ("prog_btf_fd", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("func_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("line_info_cnt", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
    ]


class RawTracepointOpenAttr(ctypes.Structure):
    """``union bpf_attr`` for ``BPF_RAW_TRACEPOINT_OPEN`` (``raw_tracepoint``)."""

    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32)]


_libc: Any = None


def sys_bpf_number(machine: str | None = None) -> int:
    """bpf(2)'s syscall number on this (or ``machine``'s) architecture."""
    arch = machine or platform.machine()
    nr = SYS_BPF.get(arch)
    if nr is None:
        raise DetectorError(
            f"no bpf(2) syscall number known for architecture {arch!r}",
            hint=f"supported: {', '.join(sorted(SYS_BPF))}; use hook='raw_tp'",
        )
    return nr


def bpf_syscall(cmd: int, attr: ctypes.Structure) -> int:
    """bpf(cmd, attr) with the attribute padded to the union's size; the fd (OSError on -1)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(max(BPF_ATTR_SIZE, ctypes.sizeof(attr)))
    ctypes.memmove(buf, ctypes.addressof(attr), ctypes.sizeof(attr))
    fd = int(_libc.syscall(ctypes.c_long(sys_bpf_number()), ctypes.c_long(cmd), buf,
                           ctypes.c_uint(len(buf))))  # fmt: skip
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def load_tp_btf(module: Any, name: bytes, btf_id: int) -> int:
    """Load BCC-compiled function ``name`` as a tp_btf program for BTF id ``btf_id``; its fd.

    BCC has already compiled it and put the map fds in its instructions; the verifier's log
    is read only when loading fails, and its last lines go into the error.
    """
    from bcc import lib

    insns = lib.bpf_function_start(module, name)
    size = lib.bpf_function_size(module, name)
    if not insns or not size:
        raise OSError(0, f"no BPF function {name.decode()}")
    lic = ctypes.create_string_buffer(lib.bpf_module_license(module) or b"GPL")
    for log_size in (0, LOG_SIZE):
        log = ctypes.create_string_buffer(max(log_size, 1))
        attr = ProgLoadAttr(
            prog_type=BPF_PROG_TYPE_TRACING, insn_cnt=size // 8, insns=insns,
            license=ctypes.addressof(lic), log_level=1 if log_size else 0, log_size=log_size,
            log_buf=ctypes.addressof(log) if log_size else 0, prog_name=name[:15],
            expected_attach_type=BPF_TRACE_RAW_TP, attach_btf_id=btf_id,
        )  # fmt: skip
        try:
            return bpf_syscall(BPF_PROG_LOAD, attr)
        except OSError as exc:
            if log_size:
                tail = log.value.decode("utf-8", "replace").strip().splitlines()[-3:]
                raise OSError(exc.errno, f"{exc.strerror}: {' / '.join(tail)}") from None
    raise AssertionError("unreachable")


def attach_tp_btf(prog_fd: int) -> int:
    """Attach a loaded tp_btf program (its tracepoint is in its BTF id); the link's fd."""
    return bpf_syscall(BPF_RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(name=0, prog_fd=prog_fd))


BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


class EnableStatsAttr(ctypes.Structure):
    """``union bpf_attr`` for ``BPF_ENABLE_STATS``."""

    _fields_ = [("type", ctypes.c_uint32)]


def enable_stats() -> int:
    """Count runs and run time of every BPF program while the returned fd stays open."""
    return bpf_syscall(BPF_ENABLE_STATS, EnableStatsAttr(type=BPF_STATS_RUN_TIME))


def fdinfo(fd: int, pid: int | str = "self") -> dict[str, str]:
    """What the kernel tells of process ``pid``'s ``fd`` (a program's: prog_id, run_cnt,
    run_time_ns...), key -> value as written."""
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        return {key: value.strip() for key, sep, value in (line.partition(":") for line in f)
                if sep}  # fmt: skip


def prog_stats(prog_fd: int) -> tuple[int, int]:
    """(runs, run time in ns) of a loaded program, as the kernel counts them (see enable_stats)."""
    info = fdinfo(prog_fd)
    return int(info.get("run_cnt", 0)), int(info.get("run_time_ns", 0))


BPF_MAP_CREATE = 0
BPF_MAP_TYPE_RINGBUF = 27


class MapCreateAttr(ctypes.Structure):
    """``union bpf_attr`` for ``BPF_MAP_CREATE``, up to ``map_name``."""

    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
    ]


def create_ringbuf(size: int, name: bytes) -> int:
    """A new BPF ring buffer map of ``size`` data bytes (a power-of-two number of pages); its fd."""
    attr = MapCreateAttr(map_type=BPF_MAP_TYPE_RINGBUF, max_entries=size, map_name=name[:15])
    return bpf_syscall(BPF_MAP_CREATE, attr)
