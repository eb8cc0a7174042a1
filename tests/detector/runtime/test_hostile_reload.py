"""Hostile rules files dropped into a running eBPF detector's rules directory: the detector stays
up, answers /healthz within the chart's probe timeout all through the reloads, keeps its old
rules (they still fire) and reports each failed reload with Falco's Critical internal alert."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.eventually import eventually
from tests.realparts import free_port, need_bpf

CLI = [sys.executable, "-m", "falcoctl_py.cli.main"]
FAILURE = "Falco internal: hot restart failure"


def _nested_macros(depth: int) -> str:
    """Each macro uses the one before twice: the expanded condition doubles at every level.

    A broken rule at the end makes the file fail after the expansion was paid for (or the
    rules loader refuses the expansion before that): either way it must not load.
    """
    out = ["- macro: m0\n  condition: (evt.type = open or evt.type = openat)\n"]
    out += [f"- macro: m{i}\n  condition: (m{i - 1} or m{i - 1})\n" for i in range(1, depth)]
    out.append(f"- rule: expensive\n  desc: x\n  condition: m{depth - 1}\n  output: x\n"
               "  priority: INFO\n")
    out.append("- rule: broken\n  desc: x\n  condition: evt.type = open and\n  output: x\n"
               "  priority: INFO\n")
    return "".join(out)


HOSTILE = {
    "50,000 nested [": "[" * 50_000,
    # 13 levels: 8,192 copies of m0, built and refused while the detector runs. Deeper files
    # are the rules loader's to refuse (a bound on macro expansion, detector.rules): here a
    # deeper one spends seconds in one call to compile() that holds the interpreter lock.
    "nested macros": _nested_macros(13),
    "nested maps": "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)),
}


# What would restart the pod: the chart's livenessProbe/readinessProbe timeoutSeconds
# (charts/*/values.yaml). A tighter bound only measures how loaded the shared machine is.
PROBE_TIMEOUT = 5.0


class HealthProbe(threading.Thread):
    """Asks /healthz every 50 ms as the kubelet would; counts the answers that did not come."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.asked = port, 0
        self.failed: list[float] = []  # seconds each unanswered probe took
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.asked += 1
            start = time.monotonic()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz",
                                            timeout=PROBE_TIMEOUT) as resp:
                    ok = resp.status == 200
            except OSError:
                ok = False
            if not ok or time.monotonic() - start > PROBE_TIMEOUT:
                self.failed.append(round(time.monotonic() - start, 3))
            self.stopping.wait(0.05)


def _alerts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.slow
def test_hostile_rules_files_under_hot_reload(tmp_path: Path) -> None:
    need_bpf()
    rules_d = tmp_path / "rules.d"
    rules_d.mkdir()
    marker = tmp_path / "marker"
    marker.write_text("x")
    (rules_d / "good.yaml").write_text(
        "- rule: Marker read\n  desc: x\n"
        f"  condition: evt.type in (open, openat) and fd.name = {marker}\n"
        "  output: marker read (file=%fd.name)\n  priority: WARNING\n")
    alerts = tmp_path / "alerts.json"
    port = free_port()
    config = tmp_path / "falco.yaml"
    config.write_text(f"""\
rules_files: [{rules_d}]
json_output: true
stdout_output: {{enabled: false}}
file_output: {{enabled: true, keep_alive: true, filename: {alerts}}}
webserver: {{enabled: true, listen_address: 127.0.0.1, listen_port: {port}}}
base_syscalls: {{repair: true}}
""")
    proc = subprocess.Popen([*CLI, "run", "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    probe = HealthProbe(port)
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return True
            except OSError:
                return False

        eventually(up, timeout=90, interval=0.1, what="the detector's web server")
        probe.start()
        for n, (name, text) in enumerate(HOSTILE.items(), 1):
            (rules_d / "hostile.yaml").write_text(text)
            def failed(n: int = n) -> bool:
                return sum(a["rule"] == FAILURE for a in _alerts(alerts)) >= n  # type: ignore[no-any-return]

            def fired(n: int = n) -> bool:
                return sum(a["rule"] == "Marker read" for a in _alerts(alerts)) >= n  # type: ignore[no-any-return]

            eventually(failed, timeout=60, interval=0.1, what=f"the failed reload of {name}")
            assert proc.poll() is None, f"the detector died on {name}"
            subprocess.run(["cat", str(marker)], capture_output=True, check=False)
            eventually(fired, timeout=30, interval=0.1, what=f"the old rule firing after {name}")
        probe.stopping.set()
        probe.join(5)
        assert probe.asked > 10 and probe.failed == [], probe.failed
        failures = [a for a in _alerts(alerts) if a["rule"] == FAILURE]
        assert all(a["priority"] == "Critical" and "hostile.yaml" in a["output"]
                   for a in failures)
        assert all("\n" not in a["output"] and "Traceback" not in a["output"]
                   for a in failures)
    finally:
        probe.stopping.set()
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
