"""Giving back the memory BCC's compiler (LLVM, clang) used, once the programs are loaded.

After ``EbpfSource.open`` the compiler is idle for good: its pages that are exactly the file
(read-only, never written mappings of ``libLLVM``, ``libclang-cpp``, ``libbcc``) are dropped
from this process with ``madvise(MADV_DONTNEED)`` (they stay in the page cache and fault
back in if ever run again), the parsed kernel BTF is forgotten, and freed heap goes back to
the system with ``malloc_trim``.
Writable mappings are never touched: dropping them would lose data.
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys

MADV_DONTNEED = 4
COMPILER_LIBS = ("libLLVM", "libclang", "libbcc")
_MAP = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


def rss_bytes() -> int:
    """This process's resident memory."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def compiler_mappings(smaps_text: str) -> list[tuple[int, int]]:
    """(start, end) of the compiler libraries' mappings in /proc/PID/smaps that are exactly
    the file: not writable, no private dirty or anonymous page (a read-only mapping written
    once by the dynamic loader, RELRO, has them: dropping those pages would crash)."""
    out = []
    span: tuple[int, int] | None = None
    dirty = 0
    for line in [*smaps_text.splitlines(), "00-00 ---p 0 0 0 [end]"]:
        m = _MAP.match(line)
        if m is not None:
            if span is not None and dirty == 0:
                out.append(span)
            name = m.group(4).rsplit("/", 1)[-1]
            ok = "w" not in m.group(3) and name.startswith(COMPILER_LIBS)
            span = (int(m.group(1), 16), int(m.group(2), 16)) if ok else None
            dirty = 0
        elif line.startswith(("Private_Dirty:", "Anonymous:")):
            dirty += int(line.split()[1])
    return out


def forget_btf() -> None:
    """Drop the parsed kernel BTF (about 19 MiB of Python objects), only needed to compile and
    load; a later compile parses it again."""
    btf = sys.modules.get("detector.bpf.btf")
    if btf is not None:
        btf.load.cache_clear()
    gc.collect()


def release_compiler() -> tuple[int, int]:
    """Drop the compiler's code pages and trim the heap; (RSS before, RSS after) in bytes."""
    before = rss_bytes()
    forget_btf()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    with open("/proc/self/smaps") as f:
        spans = compiler_mappings(f.read())
    for start, end in spans:
        libc.madvise(ctypes.c_void_p(start), end - start, MADV_DONTNEED)  # best effort
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
    return before, rss_bytes()
