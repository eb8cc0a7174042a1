"""The eBPF feed's pacing: a trickle of events is read in batches (fewer wake-ups of the reader),
a storm is read without waiting, and no event is lost or reordered."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.events import Event
from detector.feeds import BATCH, PACE_BELOW, paced
from tests.eventually import eventually
from tests.realparts import need_bpf

TRICKLE = """import os, sys, time
for _ in range(int(sys.argv[2])):
    os.close(os.open(sys.argv[1], os.O_RDONLY))
    time.sleep(0.0005)
"""


def _ev(n: int) -> Event:
    return Event(num=n, ts=n, type="openat", tid=1, dir="<")


def _reader(batches: list[list[Event]]) -> Callable[..., list[Event]]:
    """Batches as a source hands them out (a trickle, a storm, an idle spell: on demand)."""
    it = iter(batches)

    def read(*, timeout: float, limit: int) -> list[Event]:
        assert limit == BATCH
        return next(it, [])

    return read


def test_a_small_batch_waits_before_the_next_read_and_a_full_one_does_not() -> None:
    small = [_ev(i) for i in range(3)]
    full = [_ev(100 + i) for i in range(BATCH)]
    edge = [_ev(1000 + i) for i in range(PACE_BELOW)]
    batches = [small, full, [], edge, small]
    slept: list[tuple[int, float]] = []
    seen: list[Event | None] = []
    stop = threading.Event()

    def sleep(s: float) -> None:
        slept.append((len(seen), s))

    for ev in paced(_reader(batches), stop.is_set, 0.005, sleep):
        seen.append(ev)
        if len(seen) == 3 + BATCH + 1 + PACE_BELOW + 3:
            stop.set()
    assert seen == [*small, *full, None, *edge, *small]  # nothing lost, nothing reordered
    # one wait, after the first trickle; none after the storm, the idle spell, the batch of
    # PACE_BELOW, or the last batch (the loop was stopping)
    assert slept == [(3, 0.005)]


def test_no_pace_means_no_wait() -> None:
    slept: list[float] = []
    out: list[Event | None] = []
    for ev in paced(_reader([[_ev(1)], [_ev(2)]]), lambda: len(out) >= 2, 0.0, slept.append):
        out.append(ev)
    assert [e.num for e in out if e is not None] == [1, 2] and slept == []


@pytest.mark.root
@pytest.mark.bpf
def test_a_trickle_arrives_whole_and_in_fewer_reads_than_events(tmp_path: Path) -> None:
    need_bpf()
    from detector.config.load import load_config
    from detector.feeds import SyscallFeed
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import load_rules_files

    target = tmp_path / "trickle"
    target.write_text("x")
    rules_file = tmp_path / "r.yaml"
    rules_file.write_text(f"- rule: r\n  desc: d\n  condition: evt.type = openat and fd.name = "
                          f"{target}\n  output: o\n  priority: INFO\n")  # fmt: skip
    rules = RulesEngine(load_rules_files([rules_file])).rules
    # only openat, so that the kernel filter (fd.name) drops the machine's other opens: a storm
    # of other helpers' events would otherwise fill every batch and spread the trickle thin
    only = load_config(overrides=["base_syscalls.custom_set=[openat]",
                                  "base_syscalls.repair=false"])  # fmt: skip
    feed = SyscallFeed(only, frozenset({"openat"}), rules)
    n = 200
    reads_with_ours: list[int] = []
    ours: list[Event] = []
    read = feed.source.read

    def is_ours(ev: Event | None) -> bool:
        return ev is not None and ev.type == "openat" and ev.args.get("name") == str(target)

    def counting_read(*, timeout: float, limit: int) -> list[Event]:
        batch = read(timeout=timeout, limit=limit)
        mine = sum(1 for e in batch if is_ours(e))
        if mine:
            reads_with_ours.append(mine)
        return batch

    feed.source.read = counting_read  # type: ignore[method-assign,assignment]  # counts the real reads
    stop = threading.Event()

    def consume() -> None:
        for ev in feed:
            if is_ours(ev):
                assert ev is not None
                ours.append(ev)
            if stop.is_set():
                feed.stop()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        c0 = feed.source.counters()
        # a trickle from a child (the feed skips the detector's own process): ~0.5 ms apart
        subprocess.run([sys.executable, "-c", TRICKLE, str(target), str(n)], check=True)
        eventually(lambda: len(ours) >= n, what=f"{n} opens of {target} read")
        c1 = feed.source.counters()
    finally:
        stop.set()
        reader.join(timeout=10)
        feed.close()
    assert len(ours) == n and [e.num for e in ours] == sorted(e.num for e in ours)
    assert c1.n_drops == c0.n_drops  # nothing dropped while the reader waited
    # each read took several opens: without the pace, the reader's 0.5 ms polls took about one
    assert len(reads_with_ours) <= n // 4, reads_with_ours


@pytest.mark.root
@pytest.mark.bpf
def test_an_idle_reader_wakes_about_once_per_longest_sleep() -> None:
    """The back-off reaches POLL_MAX (30 ms) and keeps it across read timeouts: ~35 wake-ups a
    second with nothing to read (a rare syscall selected), where the old one took ~260."""
    need_bpf()
    import os

    from detector.feeds import IDLE_BEAT, PACE
    from detector.sources.ebpf import EbpfSource
    from tests.detector.quiet_parts import WINDOW, wakeups

    src = EbpfSource(syscalls={"pidfd_getfd"}).open()
    rings = src.ring_set
    stop = threading.Event()
    beats: list[None] = []

    def loop() -> None:
        for ev in paced(src.read, stop.is_set, PACE, rings.nap, IDLE_BEAT):
            if ev is None:
                beats.append(ev)

    reader = threading.Thread(target=loop, daemon=True)
    reader.start()
    try:
        eventually(lambda: beats, what="an idle heartbeat")
        assert reader.native_id is not None
        woke = wakeups(os.getpid(), reader.native_id)
    finally:
        stop.set()
        rings.wake()
        reader.join(timeout=10)
        src.close()
    # a sleep of 30 ms, a heartbeat every IDLE_BEAT, and some slack for a busy machine
    assert woke <= WINDOW * (1 / 0.030 + 1 / IDLE_BEAT) + 10, woke  # 0.030: POLL_MAX
