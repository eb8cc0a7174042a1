"""Several ring buffers read as one stream in timestamp order: both read loops on crafted rings
(no kernel, no root), and the rings' layout from Falco's ``cpus_for_each_buffer``."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.bpf.ringbuf import BUSY, RingReader
from detector.bpf.rings import RingSet, online_rings, possible_cpus, ring_layout
from detector.errors import DetectorError
from detector.sources import decode as dec
from detector.sources import fast
from detector.sources.syscall_nrs import NUMBERS
from tests.detector.bpf.test_ringbuf import PAGE
from tests.detector.sources.decoders import NAMES, need_compiled
from tests.detector.sources.test_fast import Ring


def _close(ts: int, fd: int) -> bytes:
    """A close(fd) record taken at ``ts`` (CLOCK_BOOTTIME ns)."""
    return dec.HDR.pack(ts, 4 << 32 | 5, 0, fd, *([0] * 5), 0, NUMBERS["close"], 1, 0, 0, 0,
                        0, 0, 0, 0, b"sh", 0, 0, 0)  # fmt: skip


class Rings:
    """Crafted rings behind a RingSet, and a clock the merge reads as CLOCK_BOOTTIME."""

    def __init__(self, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rings = [Ring() for _ in range(n)]
        self.set = RingSet([RingReader(r.cons, r.prod, r.size, data=PAGE) for r in self.rings])
        self.now = 0
        monkeypatch.setattr(fast, "boottime_ns", lambda: self.now)

    def put(self, ring: int, *stamps: int, flags: int = 0) -> None:
        for ts in stamps:
            self.rings[ring].put(_close(ts, ts), flags)

    def read(self, name: str, limit: int = 100, first: int = 1) -> list[tuple[int, int]]:
        """(num, ts) of one batch through the named loop."""
        if name == "compiled":
            need_compiled()
        evs = fast.merger(name)(self.set, limit, first, 1000)
        return [(ev.num, ev.args["fd"]) for ev in evs]  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_records_come_by_timestamp_up_to_the_time_taken_first(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Rings(2, monkeypatch)
    r.put(0, 1, 4, 7)
    r.put(1, 2, 3, 9)
    r.now = 5  # records stamped later began after the positions were read: the next batch's
    assert r.read(name) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    r.now = 10
    assert r.read(name, first=5) == [(5, 7), (6, 9)]
    assert r.read(name) == [] and not r.set.pending()


@pytest.mark.parametrize("name", NAMES)
def test_a_busy_record_holds_back_what_other_rings_stamped_after_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Rings(2, monkeypatch)
    r.put(0, 1)
    busy_at = r.rings[0].pos
    r.put(0, 5, flags=BUSY)  # reserved, not committed: what follows it may come before ring 1's
    r.put(1, 2, 3)
    r.now = 10
    assert r.read(name) == [(1, 1)]  # only what is older than ring 0's last record before it
    r.rings[0].prod[PAGE + busy_at % r.rings[0].size + 3] &= 0x7F  # committed now
    assert r.read(name, first=2) == [(2, 2), (3, 3), (4, 5)]


@pytest.mark.parametrize("name", NAMES)
def test_a_ring_cut_by_the_batch_limit_holds_back_later_records(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Rings(2, monkeypatch)
    r.put(0, 1, 2, 3)
    r.put(1, 10, 11)
    r.now = 100
    assert r.read(name, limit=4) == [(1, 1), (2, 2)]  # 2 per ring: ring 0 stopped at ts 2
    assert r.read(name, limit=4, first=3) == [(3, 3), (4, 10), (5, 11)]


@pytest.mark.parametrize("name", NAMES)
def test_one_busy_ring_without_history_delivers_nothing_yet(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Rings(3, monkeypatch)
    r.put(0, 4, flags=BUSY)
    r.put(2, 1)
    r.now = 10
    assert r.read(name) == []  # ring 0's busy record may be older than anything: wait for it
    assert r.set.pending()


@pytest.mark.parametrize("name", NAMES)
def test_a_lone_ring_with_records_is_read_alone_up_to_the_time(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Rings(2, monkeypatch)
    r.put(1, 1, 5, 3)  # reserved in this order (a preempted program stamped 3 earlier)
    r.now = 4
    assert r.read(name) == [(1, 1)]
    r.now = 10
    assert r.read(name, first=2) == [(2, 5), (3, 3)]  # the ring's own order: nothing to merge
    r.put(1, 11)
    r.put(1, 12, flags=BUSY)
    r.now = 20
    assert r.read(name, first=4) == [(4, 11)]  # the other ring is empty: no cut to care about
    assert r.read(name) == [] and r.set.pending()


def test_ring_layout_follows_cpus_for_each_buffer() -> None:
    assert ring_layout(0, 8) == (1, 8)  # 0: one ring for every CPU
    assert ring_layout(1, 2) == (2, 1)
    assert ring_layout(2, 2) == (1, 2)  # Falco's default on a 2-CPU machine: one ring
    assert ring_layout(3, 8) == (3, 3)  # the last ring has 2 CPUs
    assert ring_layout(16, 4) == (1, 4)
    with pytest.raises(DetectorError, match="cpus_for_each_buffer -1"):
        ring_layout(-1, 4)


def test_possible_cpus_reads_the_kernels_ranges(tmp_path: Path) -> None:
    f = tmp_path / "possible"
    for text, n in (("0\n", 1), ("0-3\n", 4), ("0,2-5\n", 6)):
        f.write_text(text)
        assert possible_cpus(str(f)) == n
    assert possible_cpus(str(tmp_path / "missing")) >= 1
    f.write_text("0-1,6-7\n")  # 8 possible, 4 online: rings of 2 CPUs for 0-1 and 6-7 only
    assert online_rings(2, str(f)) == [0, 3]
    assert online_rings(4, str(f)) == [0, 1]
    f.write_text("5\n")
    assert online_rings(1, str(f)) == [0, 5]  # ring 0 is BCC's own map: always there
