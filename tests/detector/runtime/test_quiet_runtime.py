"""A running detector with nothing to do keeps its threads asleep: the webserver, the rules
watcher and reloader and an output's worker do not wake at all, and the event loop reading
the kernel wakes about once per longest sleep (30 ms) and per heartbeat, not every 0.5-4 ms
(tests/detector/test_feeds.py bounds the reader alone more tightly)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from detector.config import load_config
from detector.runtime import Runtime
from tests.detector.quiet_parts import WINDOW, switches
from tests.detector.runtime_helpers import running
from tests.eventually import eventually
from tests.realparts import free_port, need_bpf

RULE = ("- rule: quiet\n  desc: d\n  condition: evt.type = pidfd_getfd\n  output: o\n"
        "  priority: INFO\n")  # a rare syscall: the kernel seldom has anything for the loop
QUIET = ("webserver", "rules-watcher", "rules-reloader", "output-file")


@pytest.mark.root
@pytest.mark.bpf
def test_an_idle_detector_keeps_its_threads_asleep(tmp_path: Path) -> None:
    need_bpf()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE)
    cfg = load_config(overrides=[
        f"rules_files=[{rules}]", "stdout_output.enabled=false", "file_output.enabled=true",
        f"file_output.filename={tmp_path / 'alerts.txt'}", "webserver.enabled=true",
        "webserver.listen_address=127.0.0.1", f"webserver.listen_port={free_port()}",
        "base_syscalls.custom_set=[pidfd_getfd]", "base_syscalls.repair=false",
        "engine.kind=modern_ebpf",
    ])  # fmt: skip
    rt = Runtime(cfg, watch=True)
    pid = os.getpid()
    with running(rt):
        def named() -> dict[str, int | None] | None:
            got = {t.name: t.native_id for t in threading.enumerate()}
            return got if all(n in got for n in QUIET) else None

        tids = {n: tid for n, tid in eventually(named, what=f"threads {QUIET}").items()
                if n in QUIET or n.endswith("(run)")}  # the runner: the event loop
        assert len(tids) == len(QUIET) + 1, tids
        before = {n: switches(pid, tid) for n, tid in tids.items()}
        threading.Event().wait(WINDOW)
        woke = {n: switches(pid, tid) - before[n] for n, tid in tids.items()}
    assert all(woke[n] <= 1 for n in QUIET), woke  # none of them has a timer
    # 30 ms sleeps and a heartbeat twice a second (~35), plus the work other processes' exits
    # bring (procexit is always selected: container lookups, the interpreter lock): well
    # under the ~260 of the old 0.5-4 ms polling
    loop = next(n for n in woke if n not in QUIET)
    assert woke[loop] <= WINDOW * 100, woke
