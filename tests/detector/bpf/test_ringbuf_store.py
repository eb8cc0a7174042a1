"""The consumer position goes to the kernel in one 8-byte store: a reader on another CPU (a C
thread, as the kernel's producer) never sees a half-written one. A byte-by-byte store (struct's
"<Q") made the kernel see the ring buffer up to 16 MiB fuller than it was and refuse records
("drops" with the buffer nearly empty, issue 14)."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
from pathlib import Path

from detector.bpf.ringbuf import RingReader
from tests.realparts import need, need_binary

DATA = Path(__file__).parent / "data"
A, B = 0x00FF_FFFF_FFFF_FFF8, 0x0100_0000_0000_0000  # differ in every byte


def _watcher(tmp_path: Path) -> ctypes.CDLL:
    gcc = need_binary("gcc")
    lib = tmp_path / "libwatch.so"
    argv = [gcc, "-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Werror", "-o", str(lib),
            str(DATA / "watch_u64.c")]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    w = ctypes.CDLL(str(lib))
    w.watch_start.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64]
    w.watch_stop.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
    w.watch_stop.restype = ctypes.c_uint64
    return w


def test_release_is_one_store_a_concurrent_reader_never_sees_torn(tmp_path: Path) -> None:
    need(len(os.sched_getaffinity(0)) >= 2, "two CPUs (a writer and a concurrent reader)")
    watch = _watcher(tmp_path)
    cons = mmap.mmap(-1, mmap.PAGESIZE)
    prod = bytearray(mmap.PAGESIZE + 2 * 64)
    reader = RingReader(cons, prod, 64, data=mmap.PAGESIZE)
    reader.release(A)
    anchor = ctypes.c_char.from_buffer(cons)
    assert watch.watch_start(ctypes.addressof(anchor), A, B) == 0
    for _ in range(200_000):
        reader.release(B)
        reader.release(A)
    loads = ctypes.c_uint64()
    torn = watch.watch_stop(ctypes.byref(loads))
    del anchor
    reader.close()
    assert loads.value > 0
    assert torn == 0, f"{torn} of {loads.value} loads saw a half-written consumer position"
