"""A reader asleep in epoll on the ring buffers for minutes still loses nothing: events.c forces a
wake-up once a ring holds a quarter of its size unread (records below that mark wake nobody)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from tests.eventually import eventually
from tests.realparts import need_bpf

PAGES = 64  # 256 KiB rings: the bursts below are 0.75 of a ring each, 3.75 rings in all
TAG = "d" * 200
PATH = f"/nonexistent-falcoctl-py-wakeup/{TAG}/x"  # mkdir fails (no parent): nothing made
RECORD = 400  # bytes one mkdir record of PATH takes in a ring (header and padding included)
# Each burst: failing mkdirs of PATH, then a pause long enough for a woken reader to drain the
# ring; a reader that does not wake overflows it on the second burst.
BURSTS = """import os, sys, time
path = sys.argv[1]
for _ in range(int(sys.argv[2])):
    for _ in range(int(sys.argv[3])):
        try:
            os.mkdir(path)
        except FileNotFoundError:
            pass
    time.sleep(0.05)
"""


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.parametrize("cpus_for_each_buffer", [0, 1], ids=["one-ring", "ring-per-cpu"])
def test_bursts_past_half_a_ring_wake_a_sleeping_reader_and_nothing_drops(
        cpus_for_each_buffer: int) -> None:  # fmt: skip
    need_bpf()
    from detector.sources.ebpf import EbpfSource

    src = EbpfSource(syscalls={"mkdir", "mkdirat"}, ringbuf_pages=PAGES,
                     cpus_for_each_buffer=cpus_for_each_buffer).open()
    rings = src.ring_set
    ring_bytes = rings.readers[0].size
    ours: list[int] = []
    naps: list[int] = []
    done = threading.Event()

    def take_all() -> None:
        while batch := src.read(timeout=0, limit=4096):
            ours.extend(e.num for e in batch if TAG in str(e.args.get("path", "")))

    def reader() -> None:  # sleeps only in naps of 10 minutes: only a wake-up ends one
        while not done.is_set():
            naps.append(rings.sleeper.nap(600))
            take_all()

    thread = threading.Thread(target=reader, daemon=True)
    try:
        c0 = src.counters()
        thread.start()
        per_burst = ring_bytes * 3 // 4 // RECORD
        bursts = 5
        subprocess.run([sys.executable, "-c", BURSTS, PATH, str(bursts),
                        str(per_burst)], check=True)  # fmt: skip
        total = bursts * per_burst
        # all but what sits below the fill mark was read by a reader woken by the kernel
        eventually(lambda: len(ours) >= total - ring_bytes // 4 // RECORD,
                   what="the bursts read by the sleeping reader", timeout=60)
        assert naps and set(naps) == {1}, naps  # every nap ended by a ring's forced wake-up
        done.set()
        rings.wake()
        thread.join(timeout=10)
        take_all()
        c1 = src.counters()
    finally:
        done.set()
        rings.wake()
        thread.join(timeout=10)
        src.close()
    assert len(ours) == total
    assert ours == sorted(ours)
    assert c1.n_drops == c0.n_drops  # the kernel refused nothing
