"""State tracker and replay throughput, as ratios against a bare loop over the same events.

(a) baseline: a loop that only looks each event's thread up in a dict; (b) the state tracker
filling thread and fd for a realistic mix (reads/writes on known fds, opens and closes, some
connects, clones and execs); (c) writing those events to a capture; (d) replaying the capture.

Containers: (e) a metadata cache-miss storm, many short-lived containers each seen for the first
time (every one queues a runtime lookup that takes 2 ms on the metadata thread), against (f) the
same events with every container already cached; and the runtime lookups made per container.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

from detector.events import ContainerInfo, Event, ThreadInfo
from detector.sources.capture import CaptureWriter
from detector.sources.replay import ReplaySource
from detector.state.containers import Backend, ContainerManager
from detector.state.tracker import StateTracker

N = 200_000
PROCS = 200


def _events() -> list[Event]:
    out: list[Event] = []
    for i in range(N):
        num = i + 1
        tid = 1000 + i % PROCS
        k = i % 50
        if k < 30:
            ev = Event(num=num, ts=num, type="read", tid=tid, res=10, args={"fd": 3, "size": 10})
        elif k < 40:
            ev = Event(num=num, ts=num, type="openat", tid=tid, res=4,
                       args={"fd": 4, "dirfd": -100, "name": f"f{i % 7}.txt", "flags": 0})
        elif k < 47:
            ev = Event(num=num, ts=num, type="close", tid=tid, res=0, args={"fd": 4})
        elif k == 47:
            ev = Event(num=num, ts=num, type="connect", tid=tid, res=0,
                       args={"fd": 3, "tuple": "10.0.0.1:40000->10.0.0.2:80"})
        elif k == 48:
            ev = Event(num=num, ts=num, type="execve", tid=tid, res=0,
                       args={"exe": "cat", "args": ["x"], "filename": "/bin/cat",
                             "comm": "cat", "trusted_exepath": "/usr/bin/cat"})
        else:
            ev = Event(num=num, ts=num, type="write", tid=tid, res=1, args={"fd": 1})
        out.append(ev)
    return out


def _tracker() -> StateTracker:
    t = StateTracker(read_proc=False, fetch_containers=False)
    init = ThreadInfo(tid=1, pid=1, comm="init")
    t.put_thread(init)
    for p in range(PROCS):
        t.put_thread(ThreadInfo(tid=1000 + p, pid=1000 + p, comm="app", ppid=1, parent=init,
                                cwd="/srv"))
    t.process(Event(num=0, ts=0, type="socket", tid=1000, res=3, args={"domain": 2, "type": 1}))
    for p in range(PROCS):
        t.process(Event(num=0, ts=0, type="socket", tid=1000 + p, res=3,
                        args={"domain": 2, "type": 1}))
    return t


CONTAINERS = 2000
PER_CONTAINER = 40  # events of each short-lived container's process
LOOKUP_S = 0.002


def _container_events() -> list[Event]:
    out: list[Event] = []
    num = 0
    for c in range(CONTAINERS):
        cid = f"{c:012x}" + "a" * 52  # distinct 12-hex short ids
        tid = 100_000 + c
        cgroup = f"0::/kubepods/besteffort/pod{c}/{cid}"
        for k in range(PER_CONTAINER):
            num += 1
            if k == 0:
                ev = Event(num=num, ts=num, type="execve", tid=tid, res=0,
                           args={"exe": "sh", "args": [], "filename": "/bin/sh", "comm": "sh",
                                 "trusted_exepath": "/bin/sh"},
                           ctx={"pid": tid, "cgroup": cgroup, "vpid": 1})
            elif k == PER_CONTAINER - 1:
                ev = Event(num=num, ts=num, type="procexit", tid=tid, res=0)
            else:
                ev = Event(num=num, ts=num, type="read", tid=tid, res=1, args={"fd": 0})
            out.append(ev)
    return out


class _Runtime:
    """A runtime answering every lookup after LOOKUP_S (on the metadata thread)."""

    def __init__(self) -> None:
        self.lookups = 0

    def fetch(self, info: ContainerInfo, namespace: str | None) -> None:
        self.lookups += 1
        time.sleep(LOOKUP_S)
        info.name = "c" + info.id

    def backend(self) -> Backend:
        return Backend("bench", frozenset({"containerd"}), self.fetch, lambda: None)


def _container_tracker(runtime: _Runtime) -> StateTracker:
    t = StateTracker(read_proc=False)
    t.containers.close()
    t.containers = t.threads.containers = ContainerManager(backends=[runtime.backend()])
    for c in range(CONTAINERS):
        tid = 100_000 + c
        t.put_thread(ThreadInfo(tid=tid, pid=tid, comm="runc"))
    return t


def _containers() -> None:
    runtime = _Runtime()
    tracker = _container_tracker(runtime)
    events = _container_events()
    process = tracker.process

    def run(evs: list[Event]) -> None:
        for ev in evs:
            process(ev)

    storm = _rate(run, events)  # every container new: a lookup queued for each
    tracker.containers.wait_idle(CONTAINERS * LOOKUP_S * 4 + 30)
    for c in range(CONTAINERS):  # the same processes again, now with warm caches
        tid = 100_000 + c
        tracker.put_thread(ThreadInfo(tid=tid, pid=tid, comm="runc"))
    events = _container_events()
    warm = _rate(run, events)
    named = sum(1 for c in tracker.containers.known() if c.name)
    tracker.close()
    print(f"containers, cache-miss storm: {storm:10,.0f} events/s  ({CONTAINERS} new containers,"
          f" {PER_CONTAINER} events each, {LOOKUP_S * 1000:.0f} ms per runtime lookup)")
    print(f"containers, warm caches:      {warm:10,.0f} events/s  (storm/warm = "
          f"{storm / warm:.2f})")
    print(f"runtime lookups per container: {runtime.lookups / CONTAINERS:.2f} "
          f"({named}/{CONTAINERS} named after the storm)")


def _rate(fn: Callable[[list[Event]], object], events: list[Event]) -> float:
    started = time.perf_counter()
    fn(events)
    return len(events) / (time.perf_counter() - started)


def main() -> None:
    events = _events()
    threads = _tracker().threads.threads

    def bare(evs: list[Event]) -> None:
        get = threads.get
        for ev in evs:
            ev.thread = get(ev.tid)

    tracker = _tracker()

    def tracked(evs: list[Event]) -> None:
        process = tracker.process
        for ev in evs:
            process(ev)

    base = _rate(bare, events)
    state = _rate(tracked, events)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.jsonl")
        writer = CaptureWriter(path)
        def capture(evs: list[Event]) -> None:
            for e in evs:
                writer.write(e)

        cap = _rate(capture, events)
        writer.close()
        size = os.path.getsize(path)
        replay = _rate(lambda _evs: sum(1 for _ in ReplaySource(path)), events)
    print(f"baseline dict lookup:       {base:12,.0f} events/s")
    print(f"state tracker:              {state:12,.0f} events/s  ({state / base:.3f} of baseline)")
    print(f"capture write:              {cap:12,.0f} events/s  ({cap / base:.3f} of baseline)"
          f"  {size / len(events):.0f} bytes/event")
    print(f"replay read:                {replay:12,.0f} events/s  ({replay / base:.3f} of "
          "baseline)")
    _containers()
