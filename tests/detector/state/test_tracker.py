"""The state tracker's event path: threads and fds attached, unknown threads counted."""

from __future__ import annotations

import os
import subprocess
import time

from detector.events import Event
from detector.state.tracker import StateTracker
from tests.eventually import eventually


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def test_events_of_a_process_started_after_the_scan_get_its_state() -> None:
    t = StateTracker(fetch_containers=False)
    t.scan()
    child = subprocess.Popen(["sleep", "30"], cwd="/tmp")
    try:
        eventually(lambda: _comm(child.pid) == "sleep", what="sleep exec'd")
        ev = t.process(Event(num=1, ts=time.time_ns(), type="openat", tid=child.pid, res=-2,
                             args={"dirfd": -100, "name": "x", "flags": 0}))
        assert ev.thread is not None and ev.thread.comm == "sleep" and ev.thread.cwd == "/tmp"
        assert ev.thread.parent is t.threads.threads[os.getpid()]
        assert ev.fd is not None and ev.fd.name == "/tmp/x" and ev.fd.num == -1
    finally:
        child.kill()
        child.wait()


def test_an_unknowable_thread_is_counted_and_the_event_passes() -> None:
    t = StateTracker(fetch_containers=False)
    ev = t.process(Event(num=1, ts=1, type="read", tid=2**22 + 4321, args={"fd": 0}))
    assert ev.thread is None and ev.fd is None and t.unknown_threads == 1
