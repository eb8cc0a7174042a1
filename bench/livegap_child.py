"""``falcoctl-py run`` with counters on the state's lookups, for bench_livegap: /proc fd reads,
other /proc reads, thread loads, user-database reads and cgroup walks, per event type, and the
events per type; written as JSON to $LIVEGAP_COUNTS every 0.5 s. Args: those of ``run``."""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from detector.events import Event
from detector.state import containers, fdproc, fds, procfs, tracker, users

COUNTS: collections.Counter[str] = collections.Counter()
CURRENT = ["-"]


def _count(owner: Any, name: str, key: str) -> None:
    """Wrap ``owner.name`` so that each call counts as ``key:<event type being processed>``."""
    inner: Callable[..., Any] = getattr(owner, name)

    def counted(*a: Any, **k: Any) -> Any:
        COUNTS[f"{key}:{CURRENT[0]}"] += 1
        return inner(*a, **k)

    setattr(owner, name, counted)


def _install() -> None:
    _count(fds, "read_proc_fd", "proc_fd")
    _count(fdproc, "find_inet_socket", "proc_socket")
    _count(procfs, "read_text", "proc_text")
    _count(procfs, "read_link", "proc_link")
    _count(procfs, "read_thread", "proc_thread")
    _count(users, "_read", "user_db")
    _count(containers.CgroupPaths, "scan", "cgroup_walk")
    process = tracker.StateTracker.process

    def counted(self: tracker.StateTracker, ev: Event) -> Event:
        CURRENT[0] = ev.type
        COUNTS["ev:" + ev.type] += 1
        return process(self, ev)

    tracker.StateTracker.process = counted  # type: ignore[method-assign]


def _dump(path: str) -> None:
    while True:
        time.sleep(0.5)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(dict(COUNTS), f)
        os.replace(path + ".tmp", path)


def main() -> None:
    """Install the counters, start the dumper, run the CLI."""
    _install()
    threading.Thread(target=_dump, args=(os.environ["LIVEGAP_COUNTS"],), daemon=True).start()
    from falcoctl_py.cli.main import main as cli

    sys.argv = ["falcoctl-py", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
