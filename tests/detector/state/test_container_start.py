"""A container starting under the kernel source: Falco's ``container`` event, ``proc.vpid=1``
for its first process, and the upstream rule "Launch Privileged Container" from podman's
on-disk state (no podman API service runs)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from detector.events import Event
from detector.sources.syscalls import SUPPORTED
from detector.state.runtimes.engines import Engines
from detector.state.tracker import StateTracker
from tests.detector.state.stream_parts import read_until
from tests.detector.test_hello_world import UPSTREAM_RULES, _engine
from tests.realparts import PODMAN_LIMITS, busybox_image, need, need_root, podman

INCUBATING = UPSTREAM_RULES.parent / "falco-incubating_rules.yaml"
RULE = "Launch Privileged Container"


def test_privileged_container_start(tmp_path: Path) -> None:
    need_root()
    need(INCUBATING.is_file(), f"the upstream incubating rules at {INCUBATING}")
    from detector.errors import DetectorError
    from detector.sources.ebpf import EbpfSource

    engine = _engine([UPSTREAM_RULES, INCUBATING])
    need(engine is not None, "the rules engine")
    assert engine is not None
    image = busybox_image(tmp_path, tag=f"localhost/fpy-busybox:start-{os.getpid()}")
    name = f"fpy-start-{os.getpid()}"
    storage = podman("info", "--format", "{{.Store.GraphRoot}}").strip()
    try:
        source = EbpfSource(syscalls=sorted(SUPPORTED)).open()
    except DetectorError as exc:
        need(False, f"a loadable eBPF source ({exc.one_line()})")
    tracker = StateTracker(engines=Engines(docker=(), podman=(), containerd=(), cri=(),
                                           podman_storage=storage))
    seen: list[tuple[Event, bool]] = []  # events in containers, and whether RULE fired
    hits: list[Event] = []  # the events RULE fired on (few: done() looks at all of them)
    cid: list[str] = []

    def start() -> None:
        cid.append(podman("run", "-d", "--name", name, "--privileged", *PODMAN_LIMITS, image,
                          "/bin/sleep", "600").strip().splitlines()[-1])

    def done() -> bool:
        return bool(cid) and any(
            e.thread is not None and e.thread.container.full_id == cid[0] for e in hits)

    def handle(ev: Event) -> None:
        if ev.thread is not None and not ev.thread.container.is_host:
            hit = any(a.rule == RULE for a in engine.process(ev))
            seen.append((ev, hit))
            if hit:
                hits.append(ev)

    try:
        tracker.scan()
        threading.Thread(target=start).start()  # the source records from open(): no race
        read_until(source, tracker, handle, done, timeout=40,
                   what=f"an alert of {RULE!r} in the new container")
    finally:
        source.close()
        tracker.close()
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", image, check=False)
    assert cid, "podman run did not start the container"
    mine = [(e, hit) for e, hit in seen if e.thread and e.thread.container.full_id == cid[0]]
    found = {
        "container": [e for e, _ in mine if e.type == "container"],
        "first": [e for e, _ in mine if e.type == "execve" and e.thread and e.thread.vpid == 1],
        "alert": [e for e, hit in mine if hit],
    }
    assert len(found["container"]) == 1, "one container event per container"
    cev = found["container"][0]
    assert cev.args["id"] == cid[0][:12] and cev.thread is not None
    first = found["first"][0]
    assert first.thread is not None and first.thread.comm == "sleep"
    assert cev.num < first.num  # the container event comes right before its first exec
    assert found["alert"], f"no {RULE!r}: privileged={first.thread.container.privileged}"
    assert found["alert"][0].thread.container.name == name  # type: ignore[union-attr]
