"""Helpers for runtime tests: rules text and a syscall source the test feeds itself."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from detector.events import Event, ThreadInfo

if TYPE_CHECKING:
    from detector.runtime import Runtime


def _rule(name: str, evt: str = "openat", priority: str = "WARNING") -> str:
    return (f"- rule: {name}\n  desc: test\n  condition: evt.type = {evt}\n"
            f"  priority: {priority}\n  output: {name} (num=%evt.num proc=%proc.name)\n")


RULE_A = _rule("rule_a")
RULE_B = _rule("rule_b", priority="ERROR")


@contextmanager
def running(rt: Runtime, *, ready: float = 30, join: float = 30) -> Iterator[Runtime]:
    """``rt.run()`` on a thread, ready within ``ready`` seconds; stopped and joined after."""
    runner = threading.Thread(target=rt.run)
    runner.start()
    try:
        assert rt.ready.wait(ready)
        yield rt
    finally:
        rt.stop()
        runner.join(join)


class QueueSource:
    """A syscall source fed by the test (the kernel stands behind the eBPF tests)."""

    def __init__(self) -> None:
        self.q: queue.Queue[Event | None] = queue.Queue()
        self.pushed = 0
        self.drops = 0
        self.selected: list[set[str]] = []
        self._stop = False

    def push(self, ev: Event) -> None:
        self.pushed += 1
        self.q.put(ev)

    def end(self) -> None:
        self.q.put(None)
        self._stop = True

    def __iter__(self) -> Iterator[Event | None]:
        while True:
            try:
                ev = self.q.get(timeout=0.05)
            except queue.Empty:
                yield None
                continue
            if ev is None:
                return
            yield ev

    def stats(self) -> dict[str, int]:
        return {"n_evts": self.pushed + self.drops, "n_drops": self.drops}

    def set_syscalls(self, names: set[str]) -> None:
        self.selected.append(set(names))

    def stop(self) -> None:
        self.q.put(None)

    def close(self) -> None:
        """Nothing held."""

def _ev(num: int, type_: str = "openat") -> Event:
    return Event(num=num, ts=1_700_000_000_000_000_000 + num, type=type_, tid=1,
                 thread=ThreadInfo(tid=1, pid=1, comm="cat"))
