"""The ring-buffer consumer on a crafted buffer: no kernel, no root."""

from __future__ import annotations

import struct

import pytest

from detector.bpf.ringbuf import BUSY, DISCARD, HDR_SIZE, RingReader

PAGE = 4096
SIZE = 64  # a tiny data area, so records wrap


class Ring:
    """A producer writing records as the kernel does, into buffers a RingReader reads."""

    def __init__(self) -> None:
        self.cons = bytearray(8)
        self.prod = bytearray(PAGE + 2 * SIZE)  # the data area mapped twice, as the kernel does
        self.pos = 0

    def put(self, payload: bytes, flags: int = 0) -> None:
        rec = struct.pack("<II", len(payload) | flags, 0) + payload
        rec += b"\0" * (-len(rec) % 8)
        for i, byte in enumerate(rec):  # both copies of the data area
            at = (self.pos + i) % SIZE
            self.prod[PAGE + at] = self.prod[PAGE + SIZE + at] = byte
        self.pos += len(rec)
        struct.pack_into("<Q", self.prod, 0, self.pos)

    def reader(self) -> RingReader:
        return RingReader(self.cons, self.prod, SIZE, data=PAGE)

    @property
    def consumed(self) -> int:
        return int(struct.unpack_from("<Q", self.cons)[0])


def test_records_in_order_then_space_released() -> None:
    ring = Ring()
    ring.put(b"one")
    ring.put(b"twotwo")
    reader = ring.reader()
    assert reader.pending()
    assert reader.read() == [b"one", b"twotwo"]
    assert ring.consumed == ring.pos and not reader.pending()
    assert reader.read() == []


def test_a_record_that_wraps_reads_as_one_piece() -> None:
    ring = Ring()
    reader = ring.reader()
    ring.put(b"a" * 36)  # 48 bytes with its header: the next one crosses the end of the area
    assert reader.read() == [b"a" * 36]
    ring.put(b"0123456789abcdefghij")
    assert reader.read() == [b"0123456789abcdefghij"]


def test_discarded_records_are_skipped_and_a_busy_one_stops_the_batch() -> None:
    ring = Ring()
    ring.put(b"gone", DISCARD)
    ring.put(b"kept")
    busy_at = ring.pos
    ring.put(b"half", BUSY)  # still being written by the kernel
    reader = ring.reader()
    assert reader.read() == [b"kept"]
    assert ring.consumed == busy_at  # the busy record's space is not released
    struct.pack_into("<I", ring.prod, PAGE + busy_at % SIZE, 4)  # the kernel commits it
    assert reader.read() == [b"half"]


def test_limit_and_in_place_map() -> None:
    ring = Ring()
    for i in range(3):
        ring.put(bytes([65 + i]) * 4)
    reader = ring.reader()
    got = reader.map(lambda buf, pos, i: (i, bytes(buf[pos : pos + 4])), limit=2)
    assert got == [(0, b"AAAA"), (1, b"BBBB")]
    assert reader.read() == [b"CCCC"]
    assert HDR_SIZE == 8


def test_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        RingReader(bytearray(8), bytearray(PAGE + 96), 48, data=PAGE)
