"""Syscall events reach a native plugin with their parameters, as libscap records: the C plugin
(data/scapargs.c, built here) decodes execve, openat and clone exits in ``plugin_parse_event``
and reads the record plugin_extract_fields gets; rules match the values it exposes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from detector.config import FalcoConfig, load_config
from detector.events import Event
from detector.runtime import Runtime
from detector.state.tracker import StateTracker
from tests.detector.plugins.conftest import build_plugin
from tests.detector.runtime_helpers import QueueSource, running
from tests.eventually import eventually
from tests.realparts import need_bpf

O_CLOEXEC, PPM_O_RDONLY, PPM_O_CLOEXEC = 0o2000000, 1 << 0, 1 << 12


def _rules(target: str, exe_suffix: str) -> str:
    return (
        "- rule: Exec params\n  desc: x\n"
        f"  condition: evt.type = execve and sa.exe endswith {exe_suffix}\n"
        "  output: exec (exe=%sa.exe args=%sa.args pid=%sa.pid cwd=%sa.cwd ok=%sa.ok "
        "ppid=%proc.pid cgroup=%sa.cgroup)\n  priority: WARNING\n"
        "- rule: Open params\n  desc: x\n"
        f"  condition: evt.type = openat and sa.name = {target}\n"
        "  output: open (fd=%sa.fd flags=%sa.flags ok=%sa.ok type=%sa.type xname=%sa.xname "
        "num=%fd.num parsed=%sa.nparsed)\n  priority: WARNING\n"
        "- rule: Clone params\n  desc: x\n"
        "  condition: evt.type = clone and sa.exe exists and sa.cwd exists\n"
        "  output: clone (exe=%sa.exe cwd=%sa.cwd)\n  priority: WARNING\n")


@pytest.fixture(scope="module")
def scapargs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_plugin("scapargs", tmp_path_factory.mktemp("scapargs"))


def _config(tmp_path: Path, lib: Path, rules_text: str, *options: str) -> FalcoConfig:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text)
    return load_config(overrides=[
        f"rules_files=[{rules}]", "stdout_output.enabled=false", "file_output.enabled=true",
        f"file_output.filename={tmp_path / 'alerts.json'}", "file_output.keep_alive=true",
        "json_output=true", "webserver.enabled=false", "engine.kind=nodriver",
        "load_plugins=[scapargs]", "plugins[0].name=scapargs",
        f"plugins[0].library_path={lib}", *options])


def _alerts(cfg: FalcoConfig) -> dict[str, dict[str, Any]]:
    path = Path(cfg.file_output.filename)
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {a["rule"]: a["output_fields"] for a in lines}


def test_parse_reads_the_parameters_of_syscall_events(tmp_path: Path, scapargs: Path) -> None:
    """Events shaped as the eBPF source makes them, for a real process the /proc tracker
    knows: the values the source leaves to the state (clone's exe, cwd) come from it."""
    sleeper = subprocess.Popen(["sleep", "60"], cwd="/tmp")
    eventually(lambda: Path(f"/proc/{sleeper.pid}/comm").read_text().strip() == "sleep",
               what="the sleep process")
    pid = sleeper.pid
    cfg = _config(tmp_path, scapargs, _rules("/etc/hostname", "sleep"))
    src = QueueSource()
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    rt = Runtime(cfg, source=src, tracker=tracker, watch=False)
    try:
        with running(rt):
            src.push(Event(num=1, ts=1, type="clone", tid=pid, res=pid + 1, args={
                "res": pid + 1, "exe": None, "args": None, "tid": pid, "pid": pid, "ptid": 1,
                "cwd": None, "comm": "sleep", "flags": 0x11, "uid": 0, "gid": 0}))
            src.push(Event(num=2, ts=2, type="execve", tid=pid, res=0, args={
                "res": 0, "exe": "sleep", "args": ["60", "two words"], "tid": pid, "pid": pid,
                "ptid": os.getpid(), "cwd": None, "comm": "sleep", "filename": "/usr/bin/sleep"},
                ctx={"cgroup": "0::/test.slice/scapargs.scope"}))
            src.push(Event(num=3, ts=3, type="close", tid=pid, res=0, args={"res": 0, "fd": 9}))
            src.push(Event(num=4, ts=4, type="openat", tid=pid, res=7, args={
                "fd": 7, "dirfd": -100, "name": "/etc/hostname", "flags": O_CLOEXEC, "mode": 0}))
            alerts = eventually(lambda: a if len(a := _alerts(cfg)) == 3 else None,
                                timeout=20, what="the three alerts")
    finally:
        sleeper.kill()
        sleeper.wait()
    exe, opened, clone = alerts["Exec params"], alerts["Open params"], alerts["Clone params"]
    assert (exe["sa.exe"], exe["sa.args"], exe["sa.pid"]) == ("sleep", "60 two words", pid)
    assert exe["sa.cwd"] == "/tmp" and exe["sa.ok"] == 1  # cwd: the tracker's, from /proc
    assert exe["sa.cgroup"] == "cpuset=/test.slice/scapargs.scope"  # from the kernel context
    assert (opened["sa.fd"], opened["sa.ok"]) == (7, 1)
    assert opened["sa.nparsed"] == 3  # clone, execve, openat: the types it lists, not close
    assert opened["sa.flags"] == PPM_O_RDONLY | PPM_O_CLOEXEC  # libs' bits, not the kernel's
    assert (opened["sa.type"], opened["sa.xname"]) == (307, "/etc/hostname")  # extraction too
    assert clone["sa.exe"] == "sleep" and clone["sa.cwd"] == "/tmp"


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.slow
def test_kernel_execve_and_openat_reach_parse_with_parameters(tmp_path: Path,
                                                              scapargs: Path) -> None:
    """The whole detector on this kernel: a real process's execve and openat exits are parsed
    by the plugin from their records, and rules match what it read."""
    need_bpf()
    probe = tmp_path / "scapprobe"
    shutil.copy(shutil.which("cat") or "/bin/cat", probe)
    target = tmp_path / "target.txt"
    target.write_text("x\n")
    cfg = _config(tmp_path, scapargs, _rules(str(target), "scapprobe"),
                  "engine.kind=modern_ebpf", "base_syscalls.repair=true")
    rt = Runtime(cfg, watch=False)
    pids: list[int] = []
    with running(rt, ready=120, join=60):
        def run_probe() -> dict[str, dict[str, Any]] | None:
            child = subprocess.Popen([str(probe), str(target)], stdout=subprocess.DEVNULL)
            pids.append(child.pid)
            child.wait()
            found = _alerts(cfg)
            return found if {"Exec params", "Open params"} <= set(found) else None

        alerts = eventually(run_probe, timeout=60, interval=0.5, what="the probe's alerts")
    exe, opened = alerts["Exec params"], alerts["Open params"]
    assert exe["sa.exe"] == str(probe) and exe["sa.args"] == str(target)
    assert exe["sa.pid"] == exe["proc.pid"] and exe["sa.pid"] in pids and exe["sa.ok"] == 1
    assert exe["sa.cgroup"].startswith("cpuset=/")
    assert opened["sa.fd"] == opened["fd.num"] >= 3 and opened["sa.ok"] == 1
    assert opened["sa.flags"] & 3 == PPM_O_RDONLY  # cat reads: PPM_O_RDONLY, kernel's is 0
    assert opened["sa.xname"] == str(target)


def test_extraction_only_on_the_event_types_the_plugin_lists(tmp_path: Path) -> None:
    """``plugin_get_extract_event_types``: a plugin listing openat exits (307) is asked for
    fields on openat events only (libsinsp's rule); on execve its fields have no value, while
    parsing still sees the execve (the types it parses are its own list)."""
    lib = build_plugin("scapargs", tmp_path, "-DEXTRACT_OPENAT_ONLY")
    rules = ("- rule: Exec\n  desc: x\n  condition: evt.type = execve\n"
             "  output: exec (type=%sa.type exe=%sa.exe)\n  priority: WARNING\n"
             "- rule: Open\n  desc: x\n  condition: evt.type = openat and sa.name = /etc/hostname\n"
             "  output: open (type=%sa.type parsed=%sa.nparsed)\n  priority: WARNING\n")
    cfg = _config(tmp_path, lib, rules)
    src = QueueSource()
    rt = Runtime(cfg, source=src, tracker=StateTracker(read_proc=False, fetch_containers=False),
                 watch=False)
    with running(rt):
        src.push(Event(num=1, ts=1, type="execve", tid=4242, res=0, args={
            "res": 0, "exe": "sleep", "args": ["60"], "tid": 4242, "pid": 4242, "ptid": 1,
            "cwd": "/", "comm": "sleep", "filename": "/usr/bin/sleep"}))
        src.push(Event(num=2, ts=2, type="openat", tid=4242, res=7, args={
            "fd": 7, "dirfd": -100, "name": "/etc/hostname", "flags": 0, "mode": 0}))
        alerts = eventually(lambda: a if len(a := _alerts(cfg)) == 2 else None,
                            timeout=20, what="the two alerts")
    assert alerts["Open"]["sa.type"] == 307 and alerts["Open"]["sa.nparsed"] == 2
    exe = alerts["Exec"]
    assert exe["sa.type"] in (None, "<NA>") and exe["sa.exe"] in (None, "<NA>")
