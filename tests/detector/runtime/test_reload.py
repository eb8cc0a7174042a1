"""The reloader debounces requests, builds once per burst and reports broken sets."""

from __future__ import annotations

import threading

from detector.runtime.reload import Reloader, ReloadResult
from falcoctl_py.errors import LocatedError


def test_burst_coalesces_into_one_build() -> None:
    built: list[str] = []
    done = threading.Event()

    def rebuild(reason: str) -> list[str]:
        built.append(reason)
        return []

    r = Reloader(rebuild, lambda res: None, debounce=0.2,
                 on_done=lambda res: done.set()).start()
    try:
        for i in range(5):
            r.trigger(f"change {i}")
        assert done.wait(10)
    finally:
        r.stop()
    assert len(built) == 1
    assert all(f"change {i}" in built[0] for i in range(5))


def test_broken_set_reports_and_keeps_going() -> None:
    failures: list[ReloadResult] = []

    def rebuild(reason: str) -> list[str]:
        raise LocatedError("undefined macro 'x'", path="/r.yaml", line=3)

    r = Reloader(rebuild, failures.append)
    result = r.reload_now("test")
    assert not result.ok and "/r.yaml:3: undefined macro 'x'" in result.error
    assert failures == [result]
    ok = r.reload_now("again", rebuild=lambda reason: ["/r.yaml"])
    assert ok.ok and ok.files == ["/r.yaml"]
    assert [h.ok for h in r.history] == [False, True]
