"""A native plugin's parsing capability in the running detector: every syscall event reaches
``plugin_parse_event`` before the rules, and the plugin reads the detector's ``threads`` table
(rows from the real state tracker: size, lookup by tid, iteration). The plugin is C, built here
(data/parsecount.c); its suggested field (``addOutput``) is appended to syscall rule outputs."""

from __future__ import annotations

import json
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

RULES = """\
- rule: Probe opens
  desc: the probe process opens a file
  condition: evt.type = openat and proc.name = sleep and pc.count > 0
  output: probe (parsed=%pc.count comm=%pc.comm size=%pc.size rows=%pc.rows)
  priority: WARNING
- rule: Probe closes
  desc: the probe process closes a file
  condition: evt.type = close and proc.name = sleep
  output: probe closed
  priority: WARNING
"""


@pytest.fixture(scope="module")
def parsecount(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_plugin("parsecount", tmp_path_factory.mktemp("parse"))


def _config(tmp_path: Path, lib: Path, *options: str) -> FalcoConfig:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    out = tmp_path / "alerts.json"
    return load_config(overrides=[
        f"rules_files=[{rules}]", "stdout_output.enabled=false", "file_output.enabled=true",
        f"file_output.filename={out}", "file_output.keep_alive=true", "json_output=true",
        "webserver.enabled=false", "engine.kind=nodriver", "load_plugins=[parsecount]",
        "plugins[0].name=parsecount", f"plugins[0].library_path={lib}", *options])


def _alerts(cfg: FalcoConfig) -> list[dict[str, Any]]:
    path = Path(cfg.file_output.filename)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _sleeper() -> subprocess.Popen[bytes]:
    """A real process, once it runs ``sleep`` (its comm is no longer the forking test's)."""
    proc = subprocess.Popen(["sleep", "60"])
    eventually(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep",
               what="the sleep process")
    return proc


def _run_with(cfg: FalcoConfig, tid: int) -> tuple[Runtime, dict[str, dict[str, Any]]]:
    """The detector with the real state tracker (/proc) and the test's events for ``tid``."""
    src = QueueSource()
    tracker = StateTracker(fetch_containers=False)
    tracker.scan()
    rt = Runtime(cfg, source=src, tracker=tracker, watch=False)
    with running(rt):
        src.push(Event(num=1, ts=1, type="close", tid=tid, res=0, args={"fd": 99}))
        src.push(Event(num=2, ts=2, type="openat", tid=tid, res=3,
                       args={"name": "/etc/hostname", "flags": 1}))
        alerts = eventually(lambda: {a["rule"]: a for a in _alerts(cfg)} if len(
            _alerts(cfg)) == 2 else None, timeout=20, what="the two probe alerts")
    return rt, alerts


def test_parse_sees_every_event_and_reads_the_threads_table(tmp_path: Path,
                                                             parsecount: Path) -> None:
    sleeper = _sleeper()
    try:
        comm = Path(f"/proc/{sleeper.pid}/comm").read_text().strip()
        rt, alerts = _run_with(_config(tmp_path, parsecount), sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    fields = alerts["Probe opens"]["output_fields"]
    assert fields["pc.count"] == 2  # the close and the openat, each parsed once, in order
    assert fields["pc.comm"] == comm == "sleep"  # read from the table during parse
    assert fields["pc.size"] == len(rt.thread_view) > 1  # the table has the host's threads
    assert fields["pc.rows"] == fields["pc.size"]  # iteration visits every row, each readable


def test_the_plugins_suggested_field_is_appended(tmp_path: Path, parsecount: Path) -> None:
    sleeper = _sleeper()
    try:
        _, alerts = _run_with(_config(tmp_path, parsecount), sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    closed, opened = alerts["Probe closes"], alerts["Probe opens"]
    assert closed["output"].endswith(
        "probe closed container_id=host container_name=host pc_comm=sleep")
    assert closed["output_fields"]["pc.comm"] == "sleep"
    assert opened["output"].count("sleep") == 1  # shown by the rule itself: not twice


def test_suggested_output_off_appends_nothing(tmp_path: Path, parsecount: Path) -> None:
    sleeper = _sleeper()
    try:
        _, alerts = _run_with(_config(tmp_path, parsecount, "append_output=[]"), sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert alerts["Probe closes"]["output"].endswith(": Warning probe closed")


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.slow
def test_kernel_events_reach_parse_with_the_real_threads(tmp_path: Path,
                                                         parsecount: Path) -> None:
    """The whole detector on this kernel: a real process's openat is parsed before the rules,
    and the plugin read that process's comm from the threads table while parsing it."""
    import shutil

    from tests.realparts import need_bpf

    need_bpf()
    probe = tmp_path / "dropinprobe"
    shutil.copy(shutil.which("cat") or "/bin/cat", probe)
    target = tmp_path / "target.txt"
    target.write_text("x\n")
    rules = tmp_path / "kernel_rules.yaml"
    rules.write_text(
        "- rule: Probe reads\n  desc: x\n"
        f"  condition: evt.type in (open, openat, openat2) and fd.name = {target}\n"
        "  output: read (parsed=%pc.count comm=%pc.comm size=%pc.size)\n"
        "  priority: WARNING\n")
    cfg = _config(tmp_path, parsecount, f"rules_files=[{rules}]", "engine.kind=modern_ebpf",
                  "base_syscalls.repair=true")
    rt = Runtime(cfg, watch=False)
    with running(rt, ready=120, join=60):
        def alert() -> dict[str, Any] | None:
            subprocess.run([str(probe), str(target)], capture_output=True, check=True)
            return next(iter(_alerts(cfg)), None)

        found = eventually(alert, timeout=60, interval=0.5, what="the probe's alert")
    fields = found["output_fields"]
    assert fields["pc.comm"] == "dropinprobe"  # /proc and the kernel agree: the real process
    assert fields["pc.count"] >= 1 and fields["pc.size"] > 1
