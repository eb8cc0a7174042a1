"""The bpf(2) attributes the loader builds, held against the system's <linux/bpf.h>."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from detector.bpf import loader
from detector.errors import DetectorError
from tests.realparts import need

UAPI = Path("/usr/include/linux/bpf.h")


def _offsets(tmp_path: Path, exprs: dict[str, str]) -> dict[str, int]:
    cc = shutil.which("gcc")
    need(cc is not None and UAPI.exists(), "gcc and <linux/bpf.h> (linux-libc-dev)")
    assert cc is not None
    prints = "".join(f'printf("{k} %zu\\n", (size_t)({v}));' for k, v in exprs.items())
    src = tmp_path / "attr.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include <linux/bpf.h>\n"
                   f"int main(void) {{ {prints} return 0; }}\n")  # fmt: skip
    exe = tmp_path / "attr"
    subprocess.run([cc, "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_prog_load_attr_matches_the_uapi_header(tmp_path: Path) -> None:
    fields = [f[0] for f in loader.ProgLoadAttr._fields_]
    got = _offsets(tmp_path, {f: f"offsetof(union bpf_attr, {f})" for f in fields}
                   | {"sizeof": "sizeof(union bpf_attr)"})  # fmt: skip
    for f in fields:
        assert got[f] == getattr(loader.ProgLoadAttr, f).offset, f
    assert got["sizeof"] >= ctypes.sizeof(loader.ProgLoadAttr)
    assert got["sizeof"] >= loader.BPF_ATTR_SIZE


def test_raw_tracepoint_attr_and_constants_match_the_uapi_header(tmp_path: Path) -> None:
    got = _offsets(tmp_path, {
        "name": "offsetof(union bpf_attr, raw_tracepoint.name)",
        "prog_fd": "offsetof(union bpf_attr, raw_tracepoint.prog_fd)",
        "BPF_PROG_LOAD": "BPF_PROG_LOAD", "BPF_RAW_TRACEPOINT_OPEN": "BPF_RAW_TRACEPOINT_OPEN",
        "BPF_PROG_TYPE_TRACING": "BPF_PROG_TYPE_TRACING", "BPF_TRACE_RAW_TP": "BPF_TRACE_RAW_TP",
    })  # fmt: skip
    assert got["name"] == loader.RawTracepointOpenAttr.name.offset
    assert got["prog_fd"] == loader.RawTracepointOpenAttr.prog_fd.offset
    for const in ("BPF_PROG_LOAD", "BPF_RAW_TRACEPOINT_OPEN", "BPF_PROG_TYPE_TRACING",
                  "BPF_TRACE_RAW_TP"):  # fmt: skip
        assert got[const] == getattr(loader, const), const


def test_the_syscall_number_is_the_systems() -> None:
    import platform

    unistd = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    need(platform.machine() == "x86_64" and unistd.exists(), "x86-64 with asm/unistd_64.h")
    assert f"#define __NR_bpf {loader.sys_bpf_number()}\n" in unistd.read_text()


def test_an_unknown_architecture_is_an_error_not_a_guess() -> None:
    with pytest.raises(DetectorError, match="no bpf\\(2\\) syscall number known for"):
        loader.sys_bpf_number("m68k")
