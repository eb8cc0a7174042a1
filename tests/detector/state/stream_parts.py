"""Reading a real kernel source through a state tracker until a condition holds (tests only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from detector.events import Event
from detector.state.tracker import StateTracker
from tests.eventually import eventually


def _batches(source: Any) -> Iterator[Event | None]:
    """The source's events, a ``None`` after each batch (so a reader can stop between them)."""
    while True:
        yield from source.read(timeout=0.1)
        yield None


def read_until(source: Any, tracker: StateTracker, handle: Callable[[Event], object],
               done: Callable[[], bool], *, timeout: float = 30, what: str = "events") -> None:
    """Pass each event with its state to ``handle`` until ``done()`` (NotYet after ``timeout``)."""
    stream = iter(tracker.stream(_batches(source)))

    def pump() -> bool:
        for ev in stream:
            if ev is None:
                break
            handle(ev)
        return done()

    eventually(pump, timeout=timeout, interval=0, what=what)
