"""State tracker and replay throughput, as ratios against a bare loop over the same events.

(a) baseline: a loop that only looks each event's thread up in a dict; (b) the state tracker
filling thread and fd for a realistic mix (reads/writes on known fds, opens and closes, some
connects, clones and execs); (c) writing those events to a capture; (d) replaying the capture.
"""

from __future__ import annotations

import os
import tempfile
import time

from detector.events import Event, ThreadInfo
from detector.sources.capture import CaptureWriter
from detector.sources.replay import ReplaySource
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


def _rate(fn: object, events: list[Event]) -> float:
    started = time.perf_counter()
    fn(events)  # type: ignore[operator]
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
        cap = _rate(lambda evs: [writer.write(e) for e in evs], events)
        writer.close()
        size = os.path.getsize(path)
        replay = _rate(lambda _evs: sum(1 for _ in ReplaySource(path)), events)
    print(f"baseline dict lookup:       {base:12,.0f} events/s")
    print(f"state tracker:              {state:12,.0f} events/s  ({state / base:.3f} of baseline)")
    print(f"capture write:              {cap:12,.0f} events/s  ({cap / base:.3f} of baseline)"
          f"  {size / len(events):.0f} bytes/event")
    print(f"replay read:                {replay:12,.0f} events/s  ({replay / base:.3f} of "
          "baseline)")
