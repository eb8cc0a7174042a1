"""The state-directory lock: exclusion across threads and processes, re-entrancy, stop."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from falcoctl_py.artifact.lock import lock_path, state_lock
from falcoctl_py.errors import InstallError

HOLD = """
import sys, time
from pathlib import Path
from falcoctl_py.artifact.lock import state_lock
with state_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_other_process_excludes_until_it_releases(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        stop = threading.Event()
        stop.set()
        with (
            pytest.raises(InstallError, match="stopped while waiting"),
            state_lock(tmp_path, stop=stop),
        ):
            pass
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        with state_lock(tmp_path):  # acquired once the child let go
            assert lock_path(tmp_path).exists()
    finally:
        child.kill()
        child.wait()
    assert oct(lock_path(tmp_path).stat().st_mode & 0o777) == "0o600"


def test_threads_take_turns_and_nesting_does_not_deadlock(tmp_path: Path) -> None:
    inside: list[int] = []
    overlaps: list[int] = []

    def worker(n: int) -> None:
        for _ in range(20):
            with state_lock(tmp_path):
                if inside:
                    overlaps.append(n)
                inside.append(n)
                with state_lock(tmp_path):  # re-entrant in the same thread
                    time.sleep(0.0005)
                inside.pop()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == []
