"""The project's default rules: shipped unchanged in the package, parse, load, and fire right."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from detector.events import ContainerInfo, Event, ThreadInfo
from detector.rules.lang.parser import parse
from detector.rules.load.yamlload import load_documents
from detector.state.tracker import StateTracker
from tests.realparts import need

RULES = Path(__file__).resolve().parents[2] / "index" / "rules" / "falcoctl-py_rules.yaml"
CONTAINER = ContainerInfo(id="45b1e6355a37", full_id="45b1e6355a37" + "0" * 52, type="podman",
                          name="web", image="localhost/busybox:latest")


def test_package_data_is_the_index_file() -> None:
    shipped = importlib.resources.files("detector") / "data" / "falcoctl-py_rules.yaml"
    assert shipped.read_bytes() == RULES.read_bytes()


def test_every_condition_parses_and_names_do_not_clash_with_upstream() -> None:
    (doc,) = load_documents(RULES.read_text())
    assert isinstance(doc, list)
    names = []
    for item in doc:
        assert isinstance(item, dict)
        if "condition" in item:
            parse(str(item["condition"]))
        name = str(item.get("rule") or item.get("macro") or item.get("list") or "")
        if name:
            names.append(name)
            assert name.startswith("fpy_") or name.endswith("(falcoctl-py)"), name
    assert "Terminal shell in container (falcoctl-py)" in names


def _engine() -> Any:
    for module in ("detector.rules.engine", "detector.rules.load.loader"):
        need(importlib.util.find_spec(module) is not None, f"the rules engine ({module})")
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import load_rules_files

    return RulesEngine(load_rules_files([RULES]), rule_matching="all")


_num = iter(range(1, 1_000_000))


def _tracker() -> StateTracker:
    t = StateTracker(read_proc=False, fetch_containers=False)
    conmon = ThreadInfo(tid=50, pid=50, comm="conmon", exe="conmon")
    t.put_thread(conmon)
    sshd = ThreadInfo(tid=40, pid=40, comm="sshd", exe="sshd")
    t.put_thread(sshd)
    for tid, comm, parent, container in ((60, "runc", conmon, CONTAINER),
                                         (70, "bash", sshd, ContainerInfo())):
        t.put_thread(ThreadInfo(tid=tid, pid=tid, comm=comm, exe=comm, ppid=parent.pid,
                                parent=parent, container=container, tty=34816))
    return t


def _fire(t: StateTracker, engine: Any, type_: str, tid: int, res: int, **args: Any) -> set[str]:
    ctx = args.pop("ctx", None)
    ev = t.process(Event(num=next(_num), ts=1, type=type_, tid=tid, res=res, args=args, ctx=ctx))
    return {a.rule for a in engine.process(ev)}


SHELL = "Terminal shell in container (falcoctl-py)"


@pytest.mark.parametrize(
    ("tid", "tty", "expected"),
    [(60, 34816, {SHELL}), (60, 0, set()), (70, 34816, set())],  # container/no tty/host
)
def test_terminal_shell(tid: int, tty: int, expected: set[str]) -> None:
    engine, t = _engine(), _tracker()
    t.process(Event(num=next(_num), ts=1, type="clone", tid=tid, res=tid + 1, args={"flags": 0}))
    child = tid + 1
    got = _fire(t, engine, "execve", child, 0, exe="sh", args=["-i"], filename="/bin/sh",
                tty=tty, trusted_exepath="/bin/busybox")
    # the parent of an exec'd shell is the process that cloned it (runc here, bash on the host)
    assert got & {SHELL} == expected


def test_host_rules() -> None:
    engine, t = _engine(), _tracker()
    assert "Read sensitive file untrusted (falcoctl-py)" in _fire(
        t, engine, "openat", 70, 3, dirfd=-100, name="/etc/../etc/shadow", flags=0)
    t.threads.threads[70].comm = "sudo"
    assert not _fire(t, engine, "openat", 70, 4, dirfd=-100, name="/etc/shadow", flags=0)
    t.threads.threads[70].comm = "cp"
    assert "Write below binary dir (falcoctl-py)" in _fire(
        t, engine, "openat", 70, 5, dirfd=-100, name="/usr/bin/ls", flags=0o1101)
    _fire(t, engine, "socket", 70, 6, domain=2, type=1, proto=0)
    _fire(t, engine, "connect", 70, 0, fd=6, tuple="10.0.0.2:4000->10.0.0.9:4444")
    assert "Redirect standard stream to network connection (falcoctl-py)" in _fire(
        t, engine, "dup2", 70, 1, oldfd=6, newfd=1)
    assert "Fileless execution via memfd (falcoctl-py)" in _fire(
        t, engine, "execve", 70, 0, exe="x", args=[], filename="/proc/self/fd/3",
        trusted_exepath="/memfd:x (deleted)", ctx={"exe_from_memfd": True})


def test_container_engines_unpacking_images_are_not_planting_binaries() -> None:
    engine, t = _engine(), _tracker()
    podman = ThreadInfo(tid=80, pid=80, comm="podman", exe="podman")
    t.put_thread(podman)
    t.put_thread(ThreadInfo(tid=81, pid=81, comm="exe", exe="exe", ppid=80, parent=podman))
    assert not _fire(t, engine, "openat", 81, 3, dirfd=-100, name="/bin/busybox", flags=0o1101)
