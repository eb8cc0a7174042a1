"""Every output against a real receiver; a hanging sink that does not delay the others; the
child processes of the http, syslog and program outputs (full pipe, counters, orphans)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from detector.config import load_config
from detector.metrics import Metrics
from detector.outputs import Outputs, build_outputs
from detector.outputs.base import SinkStats
from detector.outputs.file import FileSink
from detector.outputs.format import FormatOptions, InternalAlert
from detector.outputs.http import HttpSink
from detector.outputs.process import ProcessSink
from detector.outputs.program import ProgramSink
from detector.outputs.syslog import SyslogSink
from tests.detector.outputs.conftest import HttpReceiver
from tests.eventually import eventually


def _alert(i: int = 1, priority: str = "Warning") -> InternalAlert:
    return InternalAlert(time=1_700_000_000_000_000_000 + i, rule="r", priority=priority,
                         output=f"12:00:00.000000000: {priority} alert {i}",
                         output_fields={"evt.num": i}, source="syscall", tags=["t"],
                         hostname="h")


def _wait(pred: Callable[[], object], timeout: float = 10.0) -> None:
    eventually(pred, timeout=timeout, interval=0.01)


def test_file_output_keep_alive_and_reopen(tmp_path: Path) -> None:
    target = tmp_path / "events.txt"
    out = Outputs([FileSink(str(target), keep_alive=True)], options=FormatOptions())
    out.emit(_alert(1))
    _wait(lambda: target.exists() and target.read_text().count("\n") == 1)
    rotated = tmp_path / "events.txt.1"
    target.rename(rotated)  # logrotate, then SIGUSR1
    out.emit(_alert(2))
    _wait(lambda: rotated.read_text().count("\n") == 2)  # still the open handle
    out.reopen()
    out.emit(_alert(3))
    _wait(lambda: target.exists() and "alert 3" in target.read_text())
    out.close()
    assert "alert 3" not in rotated.read_text()


def test_file_output_without_keep_alive_reopens_each_time(tmp_path: Path) -> None:
    target = tmp_path / "events.txt"
    out = Outputs([FileSink(str(target))], options=FormatOptions(json_output=True))
    out.emit(_alert(1))
    _wait(lambda: target.exists())
    target.rename(tmp_path / "old")
    out.emit(_alert(2))
    _wait(lambda: target.exists())
    out.close()
    assert json.loads(target.read_text())["output_fields"] == {"evt.num": 2}


def test_syslog_udp(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    out = Outputs([SyslogSink(f"127.0.0.1:{port}")], options=FormatOptions())
    out.emit(_alert(1, "Critical"))
    data = sock.recv(65536).decode()
    out.close()
    sock.close()
    assert data.startswith("<10>")  # facility user (1) * 8 + critical (2)
    assert data.endswith(": 12:00:00.000000000: Critical alert 1")
    assert f"falco[{os.getpid()}]: " in data  # the detector's pid, not its output process's


def test_syslog_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    out = Outputs([SyslogSink(str(path))], options=FormatOptions())
    out.emit(_alert(1, "Debug"))
    data = sock.recv(65536).decode()
    out.close()
    sock.close()
    assert data.startswith("<15>")


def test_http_json_with_retries(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 2
    out = Outputs([HttpSink(http_receiver.url, json_output=True, retries=3,
                            client_options={"user_agent": "falcosecurity/falco"})],
                  options=FormatOptions(json_output=True))
    out.emit(_alert(7))
    assert http_receiver.got.wait(10)
    out.close()
    doc = json.loads(http_receiver.bodies[0])
    assert doc["rule"] == "r" and doc["output_fields"] == {"evt.num": 7}
    assert http_receiver.headers[0]["Content-Type"] == "application/json"
    assert http_receiver.headers[0]["User-Agent"] == "falcosecurity/falco"
    assert http_receiver.attempts == 3
    assert out.stats().sinks[0].sent == 1


def test_http_output_logs_no_line_per_alert(http_receiver: HttpReceiver,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    """At info level the output's child logs nothing per alert (httpx would: one line each)."""
    logger = logging.getLogger("detector.outputs")
    old = logger.level
    logger.setLevel(logging.INFO)  # the child takes the detector's level
    try:
        out = Outputs([HttpSink(http_receiver.url, json_output=False, retries=0,
                                client_options={"user_agent": "ua"})], options=FormatOptions())
        for i in range(5):
            out.emit(_alert(i))
        _wait(lambda: len(http_receiver.bodies) == 5)
        out.close()
    finally:
        logger.setLevel(old)
    err = capfd.readouterr().err
    assert "HTTP Request" not in err and "httpx" not in err


def test_http_gives_up_and_counts_an_error(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 100
    out = Outputs([HttpSink(http_receiver.url, json_output=False, retries=1,
                            client_options={"user_agent": "ua"})],
                  options=FormatOptions())
    out.emit(_alert())
    _wait(lambda: out.stats().sinks[0].errors == 1)
    out.close()
    assert http_receiver.attempts == 2


def test_program_output_keep_alive(tmp_path: Path) -> None:
    target = tmp_path / "prog.txt"
    out = Outputs([ProgramSink(f"cat >> {target}", keep_alive=True)], options=FormatOptions())
    for i in range(3):
        out.emit(_alert(i))
    out.close()
    assert target.read_text().splitlines() == [f"12:00:00.000000000: Warning alert {i}"
                                               for i in range(3)]


def test_program_output_reopen_restarts_the_kept_alive_program(tmp_path: Path) -> None:
    target = tmp_path / "pids.txt"
    out = Outputs([ProgramSink(f"cat > /dev/null; echo $$ >> {target}", keep_alive=True)],
                  options=FormatOptions())
    out.emit(_alert(1))
    _wait(lambda: out.stats().sinks[0].sent == 1)
    out.reopen()  # SIGUSR1: the first program gets EOF and ends, even with no alert coming
    _wait(lambda: target.exists() and len(target.read_text().split()) == 1)
    out.emit(_alert(2))
    out.close()
    pids = target.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]


def test_program_output_one_process_per_alert(tmp_path: Path) -> None:
    target = tmp_path / "pids.txt"
    out = Outputs([ProgramSink(f"cat > /dev/null; echo $$ >> {target}")],
                  options=FormatOptions())
    out.emit(_alert(1))
    out.emit(_alert(2))
    out.close()
    pids = target.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]


def test_hanging_sink_does_not_delay_others(tmp_path: Path,
                                             http_receiver: HttpReceiver) -> None:
    http_receiver.gate = threading.Event()  # the receiver accepts but never answers
    target = tmp_path / "events.txt"
    out = Outputs([HttpSink(http_receiver.url, json_output=True, retries=0,
                            client_options={"user_agent": "ua", "timeout": 60}),
                   FileSink(str(target), keep_alive=True)],
                  options=FormatOptions(json_output=True), capacity=5)

    def lines_are(n: int) -> bool:
        return target.exists() and target.read_text().count("\n") == n

    for i in range(50):
        out.emit(_alert(i))  # never blocks, although the http sink is stuck
        _wait(partial(lines_are, i + 1))
    stats = {s.name: s for s in out.stats().sinks}
    assert stats["file"].sent == 50 and stats["file"].dropped == 0
    assert stats["http"].sent == 0 and stats["http"].dropped == 0
    assert stats["http"].queued == 50  # waiting in the child's pipe (or in flight)
    http_receiver.gate.set()
    out.close(timeout=10)
    assert out.stats().sinks[0] == SinkStats("http", sent=50, dropped=0, errors=0, queued=0)
    assert [json.loads(b)["output_fields"]["evt.num"] for b in http_receiver.bodies] == \
        list(range(50))


def test_full_pipe_drops_and_counts_without_blocking(http_receiver: HttpReceiver) -> None:
    http_receiver.gate = threading.Event()  # the child's first POST never gets an answer
    sink = HttpSink(http_receiver.url, json_output=False, retries=0,
                    client_options={"user_agent": "ua", "timeout": 60})
    out = Outputs([sink], options=FormatOptions())
    queue = out.queues[0]
    assert isinstance(queue, ProcessSink)
    n = 3 * queue.pipe_size // 2000  # 2 kB alerts: three times what the pipe holds
    for i in range(n):
        out.emit(InternalAlert(time=1, rule="r", priority="Warning", output=f"{i} " + "x" * 2000,
                               output_fields={}, source="syscall", tags=[], hostname="h"))
    _wait(lambda: http_receiver.attempts == 1)
    stats = out.stats()
    http = stats.sinks[0]
    assert http.dropped > n // 2 and stats.dropped == http.dropped
    assert http.queued == n - http.dropped and http.sent == 0
    metrics = Metrics()
    metrics.outputs = out.stats
    text = metrics.prometheus()
    assert f"falcosecurity_falco_outputs_queue_num_drops_total {http.dropped}\n" in text
    http_receiver.gate.set()
    out.close(timeout=30)
    # every frame that was taken arrives whole and in order: none was partly written
    got = [int(b.split(b" ")[0]) for b in http_receiver.bodies]
    assert got == sorted(got) and len(got) == n - http.dropped
    assert all(b.endswith(b" " + b"x" * 2000) for b in http_receiver.bodies)
    final = out.stats().sinks[0]
    assert (final.sent, final.errors, final.queued) == (n - http.dropped, 0, 0)
    assert f'falcosecurity_falco_outputs_sent_total{{output="http"}} {final.sent}\n' in \
        metrics.prometheus()


def test_child_counters_reach_stats(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 1  # the first alert fails (no retries), the next two arrive
    out = Outputs([HttpSink(http_receiver.url, json_output=False, retries=0,
                            client_options={"user_agent": "ua"})], options=FormatOptions())
    for i in range(3):
        out.emit(_alert(i))
    _wait(lambda: out.stats().sinks[0].sent == 2)
    assert out.stats().sinks[0] == SinkStats("http", sent=2, dropped=0, errors=1, queued=0)
    pid = out.queues[0].pid  # type: ignore[union-attr]
    assert pid != os.getpid() and Path(f"/proc/{pid}").exists()
    assert b"127.0.0.1" not in Path(f"/proc/{pid}/cmdline").read_bytes()  # settings via stdin
    out.close()
    assert not _alive(pid)


def test_dead_child_drops_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = Outputs([ProgramSink(f"cat >> {tmp_path / 'p.txt'}", keep_alive=True)],
                  options=FormatOptions())
    queue = out.queues[0]
    assert isinstance(queue, ProcessSink)
    os.kill(queue.pid, signal.SIGKILL)  # the output process crashes
    _wait(lambda: not _alive(queue.pid))
    for i in range(3):
        out.emit(_alert(i))  # the detector goes on
    out.close()
    assert out.stats().dropped == 3
    assert "its process exited" in caplog.text


_ORPHAN = """
import sys, time
from detector.outputs import Outputs
from detector.outputs.format import FormatOptions, InternalAlert
from detector.outputs.http import HttpSink
from detector.outputs.process import ProcessSink
out = Outputs([HttpSink(sys.argv[1], json_output=False, retries=0,
                        client_options={"user_agent": "ua", "timeout": 60})],
              options=FormatOptions())
if sys.argv[2] == "busy":
    out.emit(InternalAlert(time=1, rule="r", priority="Warning", output="stuck",
                           output_fields={}, source="syscall", tags=[], hostname="h"))
print(out.queues[0].pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


@pytest.mark.parametrize("state", ["busy", "idle"])
def test_child_exits_when_the_detector_is_killed(http_receiver: HttpReceiver,
                                                   state: str) -> None:
    http_receiver.gate = threading.Event()  # busy: the child is blocked in a POST
    detector = subprocess.Popen([sys.executable, "-c", _ORPHAN, http_receiver.url, state],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert detector.stdout is not None
        child = int(detector.stdout.readline())
        if state == "busy":
            _wait(lambda: http_receiver.attempts == 1)
        assert _alive(child)
        detector.kill()  # SIGKILL: no chance to clean up
        detector.wait()
        _wait(lambda: not _alive(child))
    finally:
        detector.kill()
        detector.wait()


def test_build_outputs_from_config(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    target = tmp_path / "e.txt"
    cfg = load_config(overrides=[
        "stdout_output.enabled=false", "file_output.enabled=true",
        f"file_output.filename={target}", "http_output.enabled=true",
        f"http_output.url={http_receiver.url}", "json_output=true",
        "json_include_tags_property=false", "program_output.enabled=true",
        f"program_output.program=cat >> {tmp_path / 'p.txt'}",
    ])
    out = build_outputs(cfg)
    assert [q.sink.name for q in out.queues] == ["file", "http", "program"]
    out.emit(_alert(1))
    assert http_receiver.got.wait(10)
    out.close()
    assert "tags" not in json.loads(http_receiver.bodies[0])
    assert json.loads(target.read_text())["rule"] == "r"
    assert json.loads((tmp_path / "p.txt").read_text())["rule"] == "r"
