"""Falco's Hello World on the real kernel: a terminal shell in a real podman container.

``podman exec -t <c> sh -c uptime`` must give, from the kernel events through the state
tracker, an execve of ``sh`` with a terminal, the container's id, name and image and a runtime
parent; with the default rules a Notice alert; with upstream falco_rules.yaml, the upstream
rule "Terminal shell in container" too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from detector.events import Event
from detector.state.tracker import StateTracker
from tests.detector.state.stream_parts import read_until
from tests.eventually import NotYet
from tests.realparts import Container, PodmanService, need, need_root

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = ROOT / "index" / "rules" / "falcoctl-py_rules.yaml"
UPSTREAM_RULES = Path(
    os.environ.get("FALCOCTL_PY_UPSTREAM_RULES",
                   ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml")
)
EXEC_TYPES = ["execve", "execveat", "clone", "clone3", "fork", "vfork", "procexit"]


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _source() -> Any:
    need_root()
    need(_have("bcc"), "BCC (Debian python3-bpfcc)")
    need(_have("detector.sources.ebpf"), "the eBPF event source (detector.sources.ebpf)")
    from detector.errors import DetectorError
    from detector.sources.ebpf import EbpfSource

    try:
        return EbpfSource(syscalls=EXEC_TYPES).open()
    except DetectorError as exc:
        need(False, f"a loadable eBPF source ({exc.one_line()}; run `falcoctl-py driver install`)")


RULE = "Terminal shell in container (falcoctl-py)"
UPSTREAM_RULE = "Terminal shell in container"


def _engine(files: list[Path]) -> Any | None:
    """The rules engine on ``files``, or None while it is not there yet."""
    if not (_have("detector.rules.engine") and _have("detector.rules.load.loader")):
        return None
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import load_rules_files

    return RulesEngine(load_rules_files(files), rule_matching="all")


@dataclass
class Run:
    """What one ``podman exec -t c sh -c uptime`` gave: container events and alerts."""

    started: int = 0
    exec_result: Any = None
    drops: int = 0
    execs: list[tuple[str, str, int]] = field(default_factory=list)  # every execve: comm, ctr
    seen: list[Event] = field(default_factory=list)
    alerts: dict[str, list[Any]] = field(default_factory=dict)  # engine name -> alerts
    engines: dict[str, Any] = field(default_factory=dict)
    capture: Path | None = None  # the run's events, recorded with their state


def _is_terminal_shell(ev: Event, container_id: str) -> bool:
    th = ev.thread
    return ev.type == "execve" and ev.res == 0 and th is not None and th.comm == "sh" \
        and th.tty != 0 and th.container.full_id == container_id


@pytest.fixture(scope="module")
def hello(podman_container: Container, podman_api: PodmanService,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One exec, seen through the kernel source, the state tracker and both rule sets."""
    from detector.sources.capture import CaptureWriter

    run = Run(capture=tmp_path_factory.mktemp("hello") / "hello.jsonl")
    writer = CaptureWriter(str(run.capture))
    engines = {"default": _engine([DEFAULT_RULES])}
    if UPSTREAM_RULES.is_file():
        engines["upstream"] = _engine([UPSTREAM_RULES, DEFAULT_RULES])
    run.engines = {k: v for k, v in engines.items() if v is not None}
    run.alerts = {k: [] for k in run.engines}
    source = _source()
    tracker = StateTracker(container_sockets=[("podman", str(podman_api.socket))])
    try:
        tracker.scan()
        assert tracker.containers.wait_idle(20)

        def exec_shell() -> None:  # the source records from its open(): no race
            run.started = time.time_ns()
            run.exec_result = podman_container.exec("sh", "-c", "uptime", tty=True)

        def handle(ev: Event) -> None:
            if ev.type == "container":  # the kernel's events only, as the capture holds
                return
            writer.write(ev)
            for name, engine in run.engines.items():
                run.alerts[name].extend(engine.process(ev))
            if ev.type == "execve" and ev.thread is not None:
                run.execs.append((ev.thread.comm, ev.thread.container.id, ev.thread.tty))
            if ev.thread is not None and ev.thread.container.full_id == podman_container.id:
                run.seen.append(ev)

        def done() -> bool:
            return any(_is_terminal_shell(ev, podman_container.id) for ev in run.seen[-3:]) \
                and all(run.alerts[k] for k in run.engines)

        worker = threading.Thread(target=exec_shell)
        worker.start()
        # Each test asserts what it needs from what was seen: not reaching ``done`` is theirs.
        with contextlib.suppress(NotYet):
            read_until(source, tracker, handle, done, timeout=20,
                       what="the terminal shell's execve and every engine's alert")
        worker.join(60)
        run.drops = source.counters().n_drops
    finally:
        writer.close()
        source.close()
        tracker.close()
    yield run


def test_terminal_shell_state_from_the_kernel(hello: Run, podman_container: Container) -> None:
    result = hello.exec_result
    assert result is not None and result.returncode == 0, result
    shells = [ev for ev in hello.seen if _is_terminal_shell(ev, podman_container.id)]
    assert shells, (f"no execve of sh with a tty in the container among {len(hello.seen)} "
                    f"events; drops {hello.drops}; execs {hello.execs}")
    ev = shells[0]
    th = ev.thread
    assert th is not None
    assert th.container.id == podman_container.id[:12]
    assert th.container.name == podman_container.name
    assert th.container.image == podman_container.image
    assert th.exe == "sh" and th.args == ["-c", "uptime"] and th.exepath == "/bin/busybox"
    # runc starts it with CLONE_PARENT: the real parent is the runtime (field-semantics #6).
    assert th.parent is not None and th.parent.comm in ("runc", "conmon", "runc:[2:INIT]")
    assert th.user is not None and th.user.name == "root"
    # The kernel's timestamp of the exec: within a second of asking for it.
    assert 0 < ev.ts - hello.started < 1_000_000_000


def test_default_rules_alert_on_terminal_shell(hello: Run, podman_container: Container) -> None:
    need("default" in hello.engines, "the rules engine (detector.rules.engine)")
    hits = [a for a in hello.alerts["default"] if a.rule == RULE]
    assert hits, f"no alert {RULE!r}; got {[a.rule for a in hello.alerts['default']]}"
    alert = hits[0]
    assert alert.priority == 5 and alert.priority_name.lower() == "notice"
    assert "A shell was spawned in a container with an attached terminal" in alert.output
    assert f"container_id={podman_container.id[:12]}" in alert.output
    assert f"container_name={podman_container.name}" in alert.output
    assert f"image={podman_container.image}" in alert.output


def test_upstream_rule_fires(hello: Run) -> None:
    need(UPSTREAM_RULES.is_file(), f"upstream falco_rules.yaml at {UPSTREAM_RULES} "
         "(set FALCOCTL_PY_UPSTREAM_RULES)")
    need("upstream" in hello.engines, "the rules engine (detector.rules.engine)")
    rules = {a.rule for a in hello.alerts["upstream"]}
    assert UPSTREAM_RULE in rules, f"upstream rule did not fire; got {sorted(rules)}"


def test_replaying_the_capture_gives_the_same_alerts(hello: Run) -> None:
    need("default" in hello.engines, "the rules engine (detector.rules.engine)")
    from detector.sources.replay import ReplaySource

    assert hello.capture is not None
    engine = _engine([DEFAULT_RULES])
    assert engine is not None
    replayed = [a for ev in ReplaySource(str(hello.capture)) for a in engine.process(ev)]
    assert [(a.rule, a.output) for a in replayed] == [
        (a.rule, a.output) for a in hello.alerts["default"]]
    assert any(a.rule == RULE for a in replayed)
