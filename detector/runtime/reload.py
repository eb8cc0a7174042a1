"""Hot reload without loss: debounce change requests, build the whole new rule set off the hot
path, then swap it in with one reference assignment while the source, its ring buffer and the
process state keep running. A broken set leaves the old one in place and raises a Critical
internal alert ("Falco internal: hot restart failure") naming the error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from falcoctl_py.errors import FalcoctlPyError

log = logging.getLogger("detector.reload")

DEBOUNCE_SECONDS = 0.1  # Falco's 100 ms of quiet


@dataclass(slots=True)
class ReloadResult:
    """The outcome of one reload attempt."""

    ok: bool
    reason: str
    error: str = ""
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)


class Reloader:
    """A thread that turns change requests into debounced, validated rule swaps.

    ``rebuild(reason)`` builds and swaps (raising on a broken set); ``on_failure(result)`` is
    called for a broken one. ``trigger`` is safe from signal handlers and other threads.
    """

    def __init__(self, rebuild: Callable[[str], list[str]],
                 on_failure: Callable[[ReloadResult], None],
                 *, debounce: float = DEBOUNCE_SECONDS,
                 on_done: Callable[[ReloadResult], None] | None = None) -> None:
        self._rebuild = rebuild
        self._on_failure = on_failure
        self._on_done = on_done
        self.debounce = debounce
        self._cond = threading.Condition()
        self._pending: list[str] = []
        self._last_request = 0.0
        self._stopping = False
        self._lock = threading.Lock()  # one build at a time (watcher, SIGHUP, follower)
        self.history: list[ReloadResult] = []
        self._thread = threading.Thread(target=self._run, name="rules-reloader", daemon=True)

    def start(self) -> Reloader:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    def trigger(self, reason: str) -> None:
        """Ask for a reload; requests within the debounce window coalesce."""
        with self._cond:
            self._pending.append(reason)
            self._last_request = time.monotonic()
            self._cond.notify_all()

    def reload_now(self, reason: str,
                   rebuild: Callable[[str], list[str]] | None = None) -> ReloadResult:
        """Build and swap synchronously (the embedded follower and tests use this)."""
        start = time.monotonic()
        with self._lock:
            try:
                files = (rebuild or self._rebuild)(reason)
                result = ReloadResult(True, reason, seconds=time.monotonic() - start,
                                      files=files)
                log.info("rules reloaded (%s) in %.3fs: %d files", reason, result.seconds,
                         len(files))
            except FalcoctlPyError as err:
                result = ReloadResult(False, reason, err.one_line(), time.monotonic() - start)
            except Exception as err:  # a bug in a loader must not take the detector down
                result = ReloadResult(False, reason, f"{type(err).__name__}: {err}",
                                      time.monotonic() - start)
            if not result.ok:
                log.error("rules reload failed, keeping the running rules: %s", result.error)
                try:
                    self._on_failure(result)
                except Exception as err:  # the result stands even if the alert cannot go out
                    log.error("reporting the failed reload: %s", err)
        self.history.append(result)
        if self._on_done is not None:
            self._on_done(result)
        return result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                # Debounce: wait until no request came for `debounce` seconds.
                while not self._stopping:
                    quiet = time.monotonic() - self._last_request
                    if quiet >= self.debounce:
                        break
                    self._cond.wait(self.debounce - quiet)
                if self._stopping:
                    return
                reasons, self._pending = self._pending, []
            try:
                self.reload_now("; ".join(dict.fromkeys(reasons))[:500])
            except Exception as err:  # a failing alert or hook: the reloader thread lives on
                log.error("reload handling failed: %s", err)
