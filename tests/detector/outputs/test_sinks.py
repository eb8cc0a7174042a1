"""Every output against a real receiver, and a hanging sink that does not delay the others."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from detector.config import load_config
from detector.outputs import Outputs, build_outputs
from detector.outputs.file import FileSink
from detector.outputs.format import FormatOptions, InternalAlert
from detector.outputs.http import HttpSink, make_http_client
from detector.outputs.program import ProgramSink
from detector.outputs.syslog import SyslogSink
from tests.detector.outputs.conftest import HttpReceiver


def _alert(i: int = 1, priority: str = "Warning") -> InternalAlert:
    return InternalAlert(time=1_700_000_000_000_000_000 + i, rule="r", priority=priority,
                         output=f"12:00:00.000000000: {priority} alert {i}",
                         output_fields={"evt.num": i}, source="syscall", tags=["t"],
                         hostname="h")


def _wait(pred: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


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
    assert "falco[" in data


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
    client = make_http_client(user_agent="falcosecurity/falco")
    out = Outputs([HttpSink(http_receiver.url, json_output=True, client=client, retries=3)],
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


def test_http_gives_up_and_counts_an_error(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 100
    client = make_http_client(user_agent="ua")
    out = Outputs([HttpSink(http_receiver.url, json_output=False, client=client, retries=1)],
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
    client = make_http_client(user_agent="ua", timeout=60)
    target = tmp_path / "events.txt"
    out = Outputs([HttpSink(http_receiver.url, json_output=True, client=client, retries=0),
                   FileSink(str(target), keep_alive=True)],
                  options=FormatOptions(json_output=True), capacity=5)
    for i in range(50):
        out.emit(_alert(i))  # never blocks, although the http sink is stuck
        _wait(lambda n=i + 1: target.exists() and target.read_text().count("\n") == n)
    stats = {s.name: s for s in out.stats().sinks}
    assert stats["file"].sent == 50 and stats["file"].dropped == 0
    assert stats["http"].sent == 0
    assert stats["http"].dropped >= 44  # capacity 5 (+1 in flight): the rest counted as drops
    assert out.stats().dropped == stats["http"].dropped
    http_receiver.gate.set()
    out.close(timeout=10)


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
