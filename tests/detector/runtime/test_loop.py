"""The event loop's counters: ``processed`` is the source's events, nothing userspace made."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from detector.config import load_config
from detector.events import Event
from detector.runtime import Runtime
from detector.runtime.core import RunResult
from tests.detector.runtime_helpers import RULE_A, QueueSource, _ev


class ContainerEvents:
    """A tracker that puts Falco's ``container`` event before every ``execve``, as the state
    tracker does when a container starts (a real one needs a container started on cue)."""

    def process(self, event: Event) -> Event:
        return event

    def stream(self, events: Iterable[Event | None]) -> Iterator[Event | None]:
        for ev in events:
            if ev is not None and ev.type == "execve":
                yield Event(num=ev.num, ts=ev.ts, type="container", tid=ev.tid, dir=">",
                            res=0, args={"id": "0123456789ab", "type": "podman"},
                            thread=ev.thread)
            yield ev

    def close(self) -> None:
        """Nothing held."""


def test_container_events_are_not_counted_as_the_sources_events(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    cfg = load_config(overrides=[f"rules_files=[{rules}]", "stdout_output.enabled=false",
                                 "webserver.enabled=false"])
    src = QueueSource()
    rt = Runtime(cfg, source=src, tracker=ContainerEvents(), watch=False)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(rt.run()))
    runner.start()
    for num in range(1, 7):
        src.push(_ev(num, "execve" if num in (2, 5) else "openat"))
    src.end()
    runner.join(30)
    (result,) = results
    # The source offered 6 events; the 2 container events were processed too, apart.
    assert (result.events, result.processed, result.async_events) == (6, 6, 2)
    assert result.alerts == 4
