"""The rules watcher (inotify) blocks while nothing changes: no timer wakes it, a change still
reaches it at once, and ``stop`` ends it."""

from __future__ import annotations

import os
import queue
from pathlib import Path

from detector.runtime.watch import RulesWatcher
from tests.detector.quiet_parts import wakeups
from tests.eventually import eventually


def test_an_idle_rules_watcher_blocks_sees_changes_and_stops(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("[]\n")
    changes: queue.Queue[str] = queue.Queue()
    watcher = RulesWatcher(lambda: [rules], changes.put).start()
    thread = watcher._thread
    try:
        assert watcher.mode == "inotify"
        assert thread.native_id is not None
        assert wakeups(os.getpid(), thread.native_id) <= 1  # the old select woke 5 times a second
        rules.write_text("- list: a\n  items: []\n")
        eventually(lambda: not changes.empty(), what="the change reported")
        assert str(rules) in changes.get_nowait()
    finally:
        watcher.stop()
    assert not thread.is_alive()  # stop() ended the blocked select
