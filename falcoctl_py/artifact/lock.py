"""The state-directory lock that install, follow and rollback take before changing files.

An ``fcntl`` lock on ``<state-dir>/.falcoctl/lock``: held by one process (or one thread holding
the lock object) at a time, released by the kernel if the holder dies, so no stale lock remains.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from falcoctl_py.errors import InstallError

LOCK_NAME = Path(".falcoctl") / "lock"

# flock locks belong to open file descriptions: two threads of one process opening the file
# twice do exclude each other, but a thread lock keeps the in-process order fair and cheap.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()
_HELD = threading.local()  # paths this thread holds


def lock_path(state_dir: Path) -> Path:
    """Where the lock file of ``state_dir`` lives."""
    return state_dir / LOCK_NAME


@contextmanager
def state_lock(
    state_dir: Path, *, stop: threading.Event | None = None, poll: float = 0.05
) -> Iterator[None]:
    """Hold the lock of ``state_dir``; waiting ends early (InstallError) when ``stop`` is set.

    Re-entrant within a thread: a nested call (follow calling install's code) just goes on.
    """
    path = lock_path(state_dir)
    held: set[str] = _HELD.__dict__.setdefault("paths", set())
    key = str(path.absolute())
    if key in held:
        yield
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise InstallError(
            f"cannot open the lock file {path}: {err.strerror}",
            hint="check that the state directory is writable (--state-dir)",
        ) from None
    with _GUARD:
        inner = _THREAD_LOCKS.setdefault(str(path.resolve()), threading.Lock())
    try:
        while not inner.acquire(timeout=poll):
            if stop is not None and stop.is_set():
                raise InstallError(f"stopped while waiting for the lock {path}")
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if stop is not None and stop.is_set():
                        raise InstallError(f"stopped while waiting for the lock {path}") from None
                    time.sleep(poll)
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            inner.release()
    finally:
        os.close(fd)
