"""Giving back the compiler's memory after loading: only pages that are exactly the file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from detector.bpf import btf
from detector.bpf.memory import compiler_mappings, forget_btf
from tests.realparts import need_bpf

SMAPS = """\
7f0000000000-7f0000100000 r-xp 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                1024 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000100000-7f0000200000 r--p 00100000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 512 kB
Private_Dirty:       128 kB
Anonymous:           128 kB
7f0000200000-7f0000300000 rw-p 00200000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Private_Dirty:         0 kB
7f0000300000-7f0000400000 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6
Private_Dirty:         0 kB
7f0000400000-7f0000500000 r-xp 00000000 08:01 13 /usr/lib/llvm-14/lib/libclang-cpp.so.14
Private_Dirty:         0 kB
Anonymous:             0 kB
"""


def test_only_clean_read_only_mappings_of_the_compiler_are_dropped() -> None:
    assert compiler_mappings(SMAPS) == [(0x7F0000000000, 0x7F0000100000),
                                        (0x7F0000400000, 0x7F0000500000)]  # fmt: skip


def test_the_parsed_kernel_btf_is_forgotten_and_parsed_again() -> None:
    """The parsed BTF (about 19 MiB of Python objects) is not kept once programs are loaded."""
    if not os.path.exists(btf.BTF_PATH):
        pytest.skip(f"no kernel BTF at {btf.BTF_PATH}")
    first = btf.load()
    forget_btf()
    assert btf.load.cache_info().currsize == 0
    assert btf.load() is not first and btf.load().size("task_struct") == first.size("task_struct")
    forget_btf()


@pytest.mark.root
@pytest.mark.bpf
def test_the_source_gives_memory_back_and_keeps_working() -> None:
    """In a fresh process: RSS falls after open, events still come, a second open compiles."""
    need_bpf()
    code = """
import os, subprocess, sys
from detector.sources.ebpf import EbpfSource
src = EbpfSource(syscalls={"openat", "procexit"}).open()
print(src.rss_before_release, src.rss_after_release)
src.set_syscalls({"openat", "unlink", "procexit"})
subprocess.run([sys.executable, "-c", "open('/etc/hostname').read()"], check=True)
n = 0
for _ in range(20):
    n += len(src.read(timeout=0.05))
src.close()
again = EbpfSource(syscalls={"openat", "procexit"}).open()
print(n, again.rss_after_release > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    before, after, events, reopened = int(out[0]), int(out[1]), int(out[2]), out[3]
    assert after < before - 50 * 2**20  # LLVM's pages and heap: more than 50 MiB
    assert events > 0 and reopened == "True"
