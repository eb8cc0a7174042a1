"""One ring buffer per CPU on the running kernel: a thread's events stay in order across CPUs,
the stream comes in timestamp order, and the kernel's counters account for every record."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from detector.events import Event
from detector.sources.ebpf import EbpfSource
from tests.detector.sources.decoders import NAMES, need_compiled
from tests.eventually import eventually
from tests.realparts import need, need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
N = 3000
# Opens of missing files, named by sequence; the migrating one moves to the other CPU each time.
CHILD = f"""
import os, sys
tag, cpus = sys.argv[1], sorted(os.sched_getaffinity(0))
pinned = tag == "pinned"
for i in range({N}):
    os.sched_setaffinity(0, {{cpus[-1] if pinned else cpus[i % len(cpus)]}})
    try:
        os.open(f"/nonexistent/ring-test-{{tag}}-{{i}}", os.O_RDONLY)
    except OSError:
        pass
"""


@pytest.fixture(params=NAMES)
def source(request: pytest.FixtureRequest) -> Iterator[EbpfSource]:
    need_bpf()
    need(len(os.sched_getaffinity(0)) >= 2, "two CPUs (one ring buffer each)")
    if request.param == "compiled":
        need_compiled()
    src = EbpfSource(syscalls={"openat"}, decoder=request.param, cpus_for_each_buffer=1).open()
    try:
        yield src
    finally:
        src.close()


def _run_children(src: EbpfSource) -> list[Event]:
    """Every event read while a migrating and a pinned child run, until the rings are empty
    after capture stopped."""
    got: list[Event] = []
    kids = [subprocess.Popen([sys.executable, "-c", CHILD, tag]) for tag in ("moving", "pinned")]
    while any(k.poll() is None for k in kids):
        got += src.read(timeout=0.01)
    assert [k.returncode for k in kids] == [0, 0]
    src.set_syscalls(frozenset())

    def drained() -> bool:
        got.extend(src.read(timeout=0.01))
        return not src.reader_pending()

    eventually(drained, timeout=10, what="the ring buffers to be empty")
    return got


def test_events_across_cpus_come_in_order_and_counters_are_exact(source: EbpfSource) -> None:
    assert source.rings == len(source.ring_set.readers) >= 2
    got = _run_children(source)
    names = [str(ev.args.get("name", "")) for ev in got]
    for tag in ("moving", "pinned"):
        prefix = f"/nonexistent/ring-test-{tag}-"
        seq = [int(n.rsplit("-", 1)[1]) for n in names if n.startswith(prefix)]
        assert seq == list(range(N)), f"{tag}: out of order or missing"
    assert {ev.cpu for ev in got if "ring-test-moving" in str(ev.args.get("name"))} == set(
        os.sched_getaffinity(0)
    )
    assert [ev.ts for ev in got] == sorted(ev.ts for ev in got)
    assert [ev.num for ev in got] == list(range(got[0].num, got[0].num + len(got)))
    c = source.counters()
    assert c.n_evts == len(got) + c.n_drops  # each record offered was read or counted dropped


@pytest.mark.parametrize(("setting", "rings"), [(0, 1), (1, 2)])
def test_the_feed_follows_engine_ebpf_cpus_for_each_buffer(setting: int, rings: int) -> None:
    need_bpf()
    need(len(os.sched_getaffinity(0)) >= 2, "two CPUs (one ring buffer each)")
    from detector.config.load import load_config
    from detector.feeds import SyscallFeed

    config = load_config(overrides=[f"engine.ebpf.cpus_for_each_buffer={setting}"])
    feed = SyscallFeed(config, frozenset({"openat"}))
    try:
        assert len(feed.source.ring_set.readers) == rings
        got: list[Event] = []

        def seen() -> bool:  # a child's open: the source skips its own process
            subprocess.run(["cat", f"/nonexistent/ring-feed-{setting}"], capture_output=True)
            got.extend(feed.source.read(timeout=0.05))
            return any(f"ring-feed-{setting}" in str(ev.args.get("name")) for ev in got)

        eventually(seen, timeout=10, what="the feed's own open")
    finally:
        feed.close()
