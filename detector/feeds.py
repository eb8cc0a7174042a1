"""What the event loop reads from the kernel: the eBPF source as a feed of batches and idle
heartbeats, its captured syscall set kept to what the rules and the state need."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from detector.bpf.ringbuf import POLL_MAX
from detector.config import FalcoConfig
from detector.events import Event

# Events decoded per read: each is about 1 KiB of Python objects while its batch is in hand,
# so the batch bounds the heap's high-water mark (4096 held 4 MiB at once, and left the heap
# that much larger for good); 512 costs one more C call per 512 events.
BATCH = 512
# After a batch of fewer than PACE_BELOW events (a trickle), the next read waits PACE so that
# records gather in the ring buffer: each wake-up of the reader costs about 30 us of CPU here
# (timer, scheduler, poll), more than decoding a few events, and a batch of ~5 events runs
# cold. The wait is a nap in epoll on the rings, which events.c ends at once when a ring holds
# a quarter of its size unread (a forced wake-up), so a long pace cannot let a ring overflow;
# a full batch (a storm) never waits. PACE is the reader's longest sleep (ringbuf.POLL_MAX,
# libscap's 30 ms): it bounds how long a record waits before a read starts.
PACE_BELOW = BATCH // 4
PACE = POLL_MAX
IDLE_BEAT = 0.5  # seconds between idle heartbeats (the loop's once-a-second tick)


def paced(read: Callable[..., list[Event]], stopped: Callable[[], bool], pace: float,
          sleep: Callable[[float], object] = time.sleep, beat: float = 0.1
          ) -> Iterator[Event | None]:  # fmt: skip
    """Batches of ``read`` as events (None when idle for ``beat`` seconds) until ``stopped``;
    after a batch of fewer than PACE_BELOW events, ``sleep(pace)`` before reading again."""
    while not stopped():
        batch = read(timeout=beat, limit=BATCH)
        if batch:
            yield from batch
            if len(batch) < PACE_BELOW and pace > 0 and not stopped():
                sleep(pace)
        else:
            yield None


class SyscallFeed:
    """The eBPF source as the loop reads it: batches, idle heartbeats, kernel counters."""

    # The captured syscall set follows the rules' event types plus state (``base_syscalls``).

    def __init__(self, config: FalcoConfig, rule_events: frozenset[str] | None,
                 rules: tuple[object, ...] | None = None) -> None:
        from detector.sources.ebpf import EbpfSource

        preset = config.engine.buffers.buf_size_preset
        self._base = config.base_syscalls
        pages = 256 << (preset - 1)
        self.pace = PACE
        self.source = EbpfSource(syscalls=self._select(rule_events),
                                 ringbuf_pages=pages,
                                 hook=config.engine.buffers.hook,
                                 cpus_for_each_buffer=config.engine.buffers.cpus_for_each_buffer)
        self.source.open()
        self._rings = self.source.ring_set  # kept: ``stop`` may come after ``close``
        self._stopping = False
        self._kernel_filters = config.engine.buffers.kernel_filters
        self.set_rules(rules)

    def _select(self, rule_events: frozenset[str] | None) -> frozenset[str] | None:
        from detector.sources.syscalls import select_syscalls

        if rule_events is None:
            return None
        return select_syscalls(rule_events, custom_set=list(self._base.custom_set),
                               repair=self._base.repair, all_syscalls=self._base.all)

    drains_on_stop = True  # the loop keeps going until the feed ends

    def __iter__(self) -> Iterator[Event | None]:
        read = self.source.read
        rings = self.source.ring_set
        yield from paced(read, lambda: self._stopping, self.pace, rings.nap, IDLE_BEAT)
        # Stop capturing, then hand over what the ring buffer still holds: every event the
        # kernel counted is processed or counted as dropped.
        self.source.set_syscalls(frozenset())
        while batch := read(timeout=0.05, limit=BATCH):
            yield from batch

    def set_syscalls(self, rule_events: set[str]) -> None:
        selected = self._select(frozenset(rule_events))
        if selected is not None and selected != self.source.selected:  # map writes only on change
            self.source.set_syscalls(selected)

    def set_rules(self, rules: tuple[object, ...] | None) -> None:
        """Kernel filters for these rules and the selection (None, or off: keep everything)."""
        plan = None
        if rules is not None and self._kernel_filters:
            from detector.kfilter.build import build

            plan = build(rules, self.source.selected, chosen=True).plan
        self.source.set_filters(plan)

    @property
    def selected(self) -> frozenset[str]:
        return self.source.selected

    def stats(self) -> dict[str, int]:
        c = self.source.counters()
        return {"n_evts": c.n_evts, "n_drops": c.n_drops}

    def stop(self) -> None:
        self._stopping = True
        self._rings.wake()  # the reader may be asleep for up to IDLE_BEAT (after close: no-op)

    def close(self) -> None:
        self.source.close()
