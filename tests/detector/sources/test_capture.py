"""Capture files: a round trip through CaptureWriter and ReplaySource, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.events import ContainerInfo, Event
from detector.sources.capture import CaptureWriter, decode_value, encode_value
from detector.sources.replay import ReplaySource
from tests.detector.state.test_threads import ev, offline, seed


def _facts(e: Event) -> tuple[object, ...]:
    """What a replay must give back of an event: its own values, its thread's and its fd's."""
    th = e.thread
    assert th is not None
    return (e.num, e.type, e.res, e.args, th.tid, th.comm, th.exe, th.args,
            th.parent.comm if th.parent else None, th.container.id, th.container.name,
            th.container.labels, th.tty, e.fd.name if e.fd else None)


def _record(path: Path) -> list[tuple[object, ...]]:
    t = offline()
    t.put_container(ContainerInfo(id="abcdefabcdef", full_id="abcdefabcdef" * 5 + "abcd",
                                  type="podman", name="web", image="localhost/bb:1",
                                  labels={"io.kubernetes.pod.name": "p"}))
    init = seed(t, 1, 1, "conmon")
    sh = seed(t, 10, 10, "sh", init)
    sh.container = t.containers.get("podman", "abcdefabcdef")
    sh.tty = 34816
    events = [
        ev("execve", 10, filename="/bin/sh", exe="sh", args=[b"-c", "uptime"]),
        ev("clone", 10, res=11, flags=0),
        ev("execve", 11, filename="/bin/uptime", exe="uptime", args=[]),
        ev("openat", 11, res=3, dirfd=-100, name="/proc/uptime", flags=0),
        ev("write", 11, res=5, fd=1, data=b"\x00\xffok"),
    ]
    out = []
    with CaptureWriter(str(path)) as w:
        for e in events:
            t.process(e)
            w.write(e)
            out.append(_facts(e))
    return out


def _replay(path: Path) -> list[tuple[object, ...]]:
    out = []
    for e in ReplaySource(str(path)):
        out.append(_facts(e))
    return out


@pytest.mark.parametrize("name", ["cap.jsonl", "cap.jsonl.gz"])
def test_round_trip_gives_the_same_stated_events(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    live = _record(path)
    # args lists come back as lists (tuples are not kept); bytes stay bytes
    assert _replay(path) == live
    assert _replay(path) == live  # deterministic
    assert live[2][5] == "uptime" and live[2][8] == "sh" and live[3][13] == "/proc/uptime"


def test_values_encode_bytes() -> None:
    v = {"a": [b"\x00", 1, "s"], "b": None}
    assert decode_value(json.loads(json.dumps(encode_value(v)))) == v
