"""The counters an output's child process shares with the detector are read and written in one
8-byte access: a reader on another CPU (a C thread) never sees a half-written one. With
struct's "<Q" (a byte at a time) the detector could read the child's "consumed" count low and
drop an alert that fits in the pipe."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

from detector.outputs.process import CONSUMED, SHARED_SIZE, words
from tests.detector.bpf.test_ringbuf_store import A, B, _watcher
from tests.realparts import need


def test_a_shared_word_is_one_store_a_concurrent_reader_never_sees_torn(tmp_path: Path) -> None:
    need(len(os.sched_getaffinity(0)) >= 2, "two CPUs (a writer and a concurrent reader)")
    watch = _watcher(tmp_path)
    shared = mmap.mmap(-1, SHARED_SIZE)
    q = words(shared)
    q[CONSUMED] = A
    anchor = ctypes.c_char.from_buffer(shared, CONSUMED * 8)
    assert watch.watch_start(ctypes.addressof(anchor), A, B) == 0
    for _ in range(200_000):
        q[CONSUMED] = B
        q[CONSUMED] = A
    loads = ctypes.c_uint64()
    torn = watch.watch_stop(ctypes.byref(loads))
    del anchor
    q.release()
    shared.close()
    assert loads.value > 0
    assert torn == 0, f"{torn} of {loads.value} loads saw a half-written count"
