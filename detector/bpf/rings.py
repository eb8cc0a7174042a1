"""The ring buffers of the kernel event source: one per CPU or per group of CPUs.

``events.c`` writes each record into the ring of its CPU (``N_RINGS`` rings, ``CPUS_PER_RING``
CPUs each), so CPUs do not share a ring buffer's lock; as Falco's modern probe does, with
Falco's ``engine.<kind>.cpus_for_each_buffer`` (0: one ring for every CPU; N: one ring per N
CPUs). Ring 0 is BCC's ``events`` map (the template of the ``rings`` array of maps); the
other rings with an online CPU are created here through bpf(2) and put in ``rings``.
``RingSet`` reads them all.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from detector.bpf.loader import create_ringbuf
from detector.bpf.ringbuf import RingReader, Sleeper
from detector.errors import DetectorError


def cpu_list(path: str) -> set[int] | None:
    """The CPUs of a sysfs CPU list (``0,2-5``); None when it cannot be read."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """How many CPU numbers the kernel may use (``0-3`` -> 4): the array of rings covers them."""
    cpus = cpu_list(path)
    return max(cpus) + 1 if cpus else os.cpu_count() or 1


def online_rings(cpus_per_ring: int, path: str = "/sys/devices/system/cpu/online") -> list[int]:
    """The rings that have an online CPU (ring 0 always): only those are created, so a machine
    with many possible CPUs but few online ones does not pay for empty rings (a record from a
    CPU brought online later is counted as dropped)."""
    cpus = cpu_list(path) or set(range(os.cpu_count() or 1))
    return sorted({0, *(cpu // cpus_per_ring for cpu in cpus)})


def ring_layout(cpus_for_each_buffer: int, cpus: int) -> tuple[int, int]:
    """(rings, CPUs per ring) for Falco's ``cpus_for_each_buffer`` on ``cpus`` CPUs."""
    if cpus_for_each_buffer < 0:
        raise DetectorError(
            f"cpus_for_each_buffer {cpus_for_each_buffer} is negative",
            hint="use 0 (one ring buffer for every CPU) or N (one per N CPUs)",
        )
    if cpus_for_each_buffer == 0 or cpus_for_each_buffer >= cpus:
        return 1, max(cpus, 1)
    return -(-cpus // cpus_for_each_buffer), cpus_for_each_buffer


class RingSet:
    """Every ring buffer of the loaded programs, as :class:`RingReader` objects."""

    def __init__(self, readers: list[RingReader], fds: list[int] | None = None) -> None:
        if not readers:
            raise ValueError("a ring set needs at least one ring buffer")
        self.readers = readers
        self._fds = fds or []
        self.sleeper = Sleeper([r.poll_fd for r in readers if r.poll_fd is not None])
        self.last_ts = [0] * len(readers)  # per ring: the largest ts delivered so far

    @classmethod
    def open(cls, bpf: Any, size: int, n_rings: int, cpus_per_ring: int = 1) -> RingSet:
        """Create the rings of online CPUs beside BCC's ``events`` (ring 0), put them in
        ``rings``, map them all."""
        first = bpf[b"events"].map_fd
        table = bpf[b"rings"]  # events.c writes through it even with one ring
        table[ctypes.c_int(0)] = ctypes.c_int(first)
        if n_rings == 1:
            return cls([RingReader.from_map(first, size)])
        fds: list[int] = []
        try:
            for i in online_rings(cpus_per_ring):
                if 0 < i < n_rings:
                    fds.append(create_ringbuf(size, f"events{i}".encode()))
                    table[ctypes.c_int(i)] = ctypes.c_int(fds[-1])
            readers = [RingReader.from_map(fd, size) for fd in (first, *fds)]
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise DetectorError(
                f"creating {n_rings} ring buffers of {size >> 20} MiB failed: {exc}",
                hint="use fewer rings (a larger cpus_for_each_buffer) or a smaller buf_size_preset",
            ) from exc
        return cls(readers, fds)

    def pending(self) -> bool:
        """Whether any ring holds records not read yet."""
        return any(r.pending() for r in self.readers)

    def wait(self, timeout: float) -> None:
        """Sleep until a ring has data, :meth:`wake` or ``timeout`` seconds: one epoll on every
        ring, looked at with a back-off of POLL_MIN..POLL_MAX, ended early by a ring past
        events.c's fill mark."""
        self.sleeper.wait(self.pending, timeout)

    def nap(self, seconds: float) -> None:
        """Sleep ``seconds`` even with records waiting (to let a trickle gather), ended early
        by a ring past the fill mark or by :meth:`wake`."""
        self.sleeper.nap(seconds)

    def wake(self) -> None:
        """End the reader's sleep now (from another thread: a stop)."""
        self.sleeper.wake()

    def fill(self) -> float:
        """The fullest ring's share of unread bytes now (0..1)."""
        return max((p - c) / r.size for r in self.readers for c, p in (r.positions(),))

    def close(self) -> None:
        self.sleeper.close()
        for r in self.readers:
            r.close()
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def boottime_ns() -> int:
    """CLOCK_BOOTTIME now, the clock of the records' ``ts``."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)
