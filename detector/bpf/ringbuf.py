"""A consumer of a BPF ring buffer map through its mmap'ed pages (the protocol libbpf follows).

The map shows two mappings: the consumer page (one u64, the consumer position, written by
userspace) and the producer page (one u64, the producer position) followed by the data area,
mapped twice in a row so a record that wraps reads as one piece. Each record has an 8-byte
header: a u32 length whose top bits say ``BUSY`` (being written: stop there) and ``DISCARD``
(skip it), then the page offset; the record follows, padded to 8 bytes. ``RingReader.take``
is the one place in Python that walks this (``detector/sources/_lean.c`` is the compiled one);
a test runs both on a crafted buffer, without a kernel.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import struct
import time
from collections.abc import Callable
from typing import TypeVar

BUSY = 1 << 31
DISCARD = 1 << 30
HDR_SIZE = 8
POLL_MIN = 0.0005  # seconds between looks at an empty ring buffer, growing to POLL_MAX
# The longest sleep of the reader: libscap's 30 ms. A record waits at most this long in the
# ring before a read starts (unless the ring passes events.c's fill mark, which wakes the
# reader at once), so it bounds the alert latency added by sleeping.
POLL_MAX = 0.030
NO_TS_LIMIT = (1 << 64) - 1  # ``walk``'s default: no record is too late
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
Buffer = bytearray | mmap.mmap | memoryview
T = TypeVar("T")


class Sleeper:
    """The reader's sleeps: in epoll on ring buffer fds, ended early only by a forced wake-up
    (edge-triggered: records submitted without one do not end a sleep) or by :meth:`wake` (a
    crafted ring has no fd: only the timeout or ``wake`` ends it). The back-off between looks
    at empty rings (POLL_MIN doubling to POLL_MAX) survives from one :meth:`wait` to the next
    and, unlike libscap's, does not restart when records come: a sparse trickle would then
    cost ~6 wake-ups (of ~30 us each here) per event, and the feed's 30 ms pace after a small
    batch already sets the latency of a trickle; a storm is read without sleeping at all."""

    def __init__(self, fds: list[int]) -> None:
        self.delay = POLL_MIN
        self.wakeups = 0  # sleeps that ended, for the benches and tests
        self._ep = select.epoll()
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._ep.register(self._efd, select.EPOLLIN)
        self._fds = list(fds)
        for fd in fds:
            self._ep.register(fd, select.EPOLLIN | select.EPOLLET)

    def nap(self, seconds: float) -> int:
        """Sleep up to ``seconds``: 0 at the timeout, 1 when a ring forced a wake-up, 2 when
        :meth:`wake` was called (since the last nap)."""
        self.wakeups += 1
        woken = 0
        for fd, _ in self._ep.poll(seconds):
            if fd == self._efd:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self._efd)
                woken = 2
            else:
                woken = max(woken, 1)
        return woken

    def wait(self, ready: Callable[[], bool], timeout: float) -> None:
        """Nap in steps of the back-off until ``ready()``, :meth:`wake` or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.nap(min(self.delay, left)) == 2:
                return
            self.delay = min(self.delay * 2, POLL_MAX)

    def wake(self) -> None:
        """End the current (or the next) nap now: from another thread, to stop the reader."""
        if self._efd >= 0:  # closed: nothing sleeps (and the fd number may be reused)
            os.eventfd_write(self._efd, 1)

    def close(self) -> None:
        if self._efd >= 0:
            self._ep.close()
            efd, self._efd = self._efd, -1
            os.close(efd)


class RingReader:
    """Records of a ring buffer: ``take`` their places, use them, ``release`` their space."""

    def __init__(self, cons: Buffer, prod: Buffer, size: int, *, data: int = mmap.PAGESIZE,
                 poll_fd: int | None = None) -> None:  # fmt: skip
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        self.size = size
        self.mask = size - 1
        self._cons = cons
        self._prod = prod
        # The positions as one u64 each, read and written with single 8-byte loads and stores:
        # struct's "<Q" goes byte by byte, and the kernel reading a half-written consumer
        # position sees the ring buffer up to 16 MiB fuller than it is and refuses records.
        self._cons_q = memoryview(cons)[:8].cast("Q")
        self._prod_q = memoryview(prod)[:8].cast("Q")
        self._data = data  # offset of the data area in ``prod``
        self.poll_fd = poll_fd  # the map's fd, for RingSet's epoll (None: a crafted ring)

    @classmethod
    def from_map(cls, map_fd: int, size: int) -> RingReader:
        """A reader of the ring buffer map ``map_fd`` of ``size`` data bytes."""
        page = mmap.PAGESIZE
        cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        return cls(cons, prod, size, data=page, poll_fd=map_fd)

    @property
    def buffer(self) -> Buffer:
        """What record positions from :meth:`take` index into."""
        return self._prod

    @property
    def data_offset(self) -> int:
        """Where the data area starts in :attr:`buffer`."""
        return self._data

    def positions(self) -> tuple[int, int]:
        """(consumer, producer) positions now: the records between them are unread."""
        return int(self._cons_q[0]), int(self._prod_q[0])

    def pending(self) -> bool:
        """Whether the kernel has written records not read yet."""
        return bool(self._prod_q[0] != self._cons_q[0])

    def take(self, limit: int = 4096) -> tuple[list[tuple[int, int]], int]:
        """(position, size) in :attr:`buffer` of up to ``limit`` records, and the consumer
        position after them: pass it to :meth:`release` once the records are used."""
        prod = self._prod  # walk()'s loop without the ts reads: the one-ring case's cost
        cons_pos, prod_pos = self._cons_q[0], self._prod_q[0]
        out: list[tuple[int, int]] = []
        append = out.append
        base, mask = self._data, self.mask
        u32 = _U32.unpack_from
        while cons_pos < prod_pos and len(out) < limit:
            off = base + (cons_pos & mask)
            ln = u32(prod, off)[0]
            if ln & BUSY:
                break
            size = ln & ~(BUSY | DISCARD)
            if not ln & DISCARD:
                append((off + HDR_SIZE, size))
            cons_pos += (size + HDR_SIZE + 7) & ~7
        return out, cons_pos

    def walk(self, limit: int = 4096, ts_limit: int = NO_TS_LIMIT
             ) -> tuple[list[tuple[int, int]], int, bool, int]:  # fmt: skip
        """:meth:`take`, stopping also at the first record whose ``ts`` (the u64 opening every
        record) is above ``ts_limit``; then whether it stopped at a busy record, and the
        largest ``ts`` taken (0: none)."""
        prod = self._prod
        cons_pos, prod_pos = self._cons_q[0], self._prod_q[0]
        out: list[tuple[int, int]] = []
        append = out.append
        base, mask = self._data, self.mask
        u32, u64 = _U32.unpack_from, _U64.unpack_from
        busy, last = False, 0
        while cons_pos < prod_pos and len(out) < limit:
            off = base + (cons_pos & mask)
            ln = u32(prod, off)[0]
            if ln & BUSY:
                busy = True
                break
            size = ln & ~(BUSY | DISCARD)
            if not ln & DISCARD:
                ts = u64(prod, off + HDR_SIZE)[0] if size >= 8 else 0
                if ts > ts_limit:
                    break
                last = max(last, ts)
                append((off + HDR_SIZE, size))
            cons_pos += (size + HDR_SIZE + 7) & ~7
        return out, cons_pos, busy, last

    def release(self, cons_pos: int) -> None:
        """Give the space up to ``cons_pos`` back to the kernel."""
        if cons_pos != self._cons_q[0]:
            self._cons_q[0] = cons_pos  # one 8-byte store (see __init__)

    def read(self, limit: int = 4096) -> list[bytes]:
        """Up to ``limit`` records copied out, their space released."""
        places, cons_pos = self.take(limit)
        prod = self._prod
        out = [bytes(prod[pos : pos + size]) for pos, size in places]
        self.release(cons_pos)
        return out

    def map(self, fn: Callable[[Buffer, int, int], T], limit: int = 4096) -> list[T]:
        """``fn(buffer, position, index)`` of up to ``limit`` records in place, then released.

        ``fn`` must copy what it keeps: the space goes back to the kernel afterwards.
        """
        places, cons_pos = self.take(limit)
        prod = self._prod
        out = [fn(prod, pos, i) for i, (pos, _) in enumerate(places)]
        self.release(cons_pos)
        return out

    def close(self) -> None:
        self._cons_q.release()
        self._prod_q.release()
        for m in (self._cons, self._prod):
            if isinstance(m, mmap.mmap):
                m.close()
