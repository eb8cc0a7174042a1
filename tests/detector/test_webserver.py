"""The web endpoints answer in Falco's shapes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.metrics import Metrics
from detector.webserver import Limits, WebEndpoints, WebServer
from falcoctl_py.errors import DetectorError
from tests.eventually import eventually


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def test_endpoints() -> None:
    m = Metrics(falco_version="0.42.0")
    m.n_evts, m.n_drops_buffer, m.processed = 10, 2, 8
    m.count_match("Read sensitive file", 4, "syscall", ["filesystem", "T1555"])
    m.rules_files = {"/etc/falco/r.yaml": "ab" * 32}
    versions = {"engine_version_semver": "0.57.0", "engine_version": "57",
                "plugin_api_version": "3.12.0", "plugin_versions": {"counter": "0.2.1"}}
    server = WebServer(WebEndpoints(versions, m.prometheus), address="127.0.0.1",
                       port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        code, ctype, body = _get(base + "/healthz")
        assert (code, ctype, json.loads(body)) == (200, "application/json", {"status": "ok"})
        code, _, body = _get(base + "/versions")
        assert json.loads(body) == versions
        code, ctype, body = _get(base + "/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        assert 'falcosecurity_scap_n_evts_total{raw_name="n_evts"} 10' in body
        assert 'falcosecurity_scap_n_drops_buffer_total{raw_name="n_drops_buffer"} 2' in body
        assert "falcosecurity_falco_events_processed_total 8" in body
        assert ('falcosecurity_falco_rules_matches_total{priority="4",rule_name="Read sensitive'
                ' file",source="syscall",tag_T1555="true",tag_filesystem="true"} 1') in body
        assert "falcosecurity_falco_outputs_queue_num_drops_total 0" in body
        assert f'sha256="{"ab" * 32}"' in body
        assert _get(base + "/nope")[0] == 404
        with pytest.raises(DetectorError, match="cannot listen"):
            WebServer(WebEndpoints(versions, None), address="127.0.0.1", port=server.port)
    finally:
        server.stop()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _need_fds(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip(f"open files: the hard limit {hard} is under {count}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


@pytest.fixture
def server() -> Iterator[WebServer]:
    m = Metrics(falco_version="0.42.0")
    m.n_evts = 10
    srv = WebServer(WebEndpoints({"engine_version": "57"}, m.prometheus), address="127.0.0.1",
                    port=0).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_idle_partial_connections_cost_no_threads_and_little_memory() -> None:
    """1,000 clients that send half a request and wait: no thread each, RSS grows < 32 MiB
    (measured here: about 3-6 MiB), and /healthz answers while all of them are still held.

    The read timeout is longer than the test, so no idle client is cut (opening 1,000 can take
    longer than the default 5 s on a loaded machine) and the answer cannot come from a slot
    freed by one; how fast it answers is not this test's business."""
    _need_fds(4096)
    server = WebServer(WebEndpoints({}, None), address="127.0.0.1", port=0,
                       limits=Limits(read_timeout=600)).start()
    threads, rss = threading.active_count(), _rss_kib()
    idle = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: partial
            idle.append(sock)
        eventually(lambda: server.open_connections >= 1000, timeout=30)
        assert threading.active_count() == threads
        grown = _rss_kib() - rss
        assert grown < 32 * 1024, f"RSS grew {grown} KiB for 1,000 idle connections"
        assert _get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
        assert server.open_connections >= 1000  # answered with every idle client still held
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_idle_connection_is_closed_after_the_read_timeout() -> None:
    srv = WebServer(WebEndpoints({}, None), address="127.0.0.1", port=0,
                    limits=Limits(read_timeout=0.2)).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz")
            assert sock.recv(100) == b""  # the server closed it, without an answer
    finally:
        srv.stop()


def test_connection_cap_closes_extra_connections() -> None:
    srv = WebServer(WebEndpoints({}, None), address="127.0.0.1", port=0,
                    limits=Limits(max_connections=2)).start()
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(2)]
    try:
        eventually(lambda: srv.open_connections == 2)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):  # reset or closed: no answer
                assert extra.recv(100) == b""
    finally:
        for sock in socks:
            sock.close()
        srv.stop()


def test_a_thousand_concurrent_metrics_requests_all_answered(server: WebServer) -> None:
    _need_fds(4096)

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data

    async def all_of_them() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(1000)))

    answers = asyncio.run(all_of_them())
    assert len(answers) == 1000
    assert all(a.startswith(b"HTTP/1.1 200 ") and b"falcosecurity_scap_n_evts_total" in a
               for a in answers)


def test_a_client_going_away_logs_once_without_traceback(
    server: WebServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "detector.webserver")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset in the middle of the request
    eventually(lambda: any("went away" in r.getMessage() for r in caplog.records))
    assert server.open_connections == 0 or eventually(lambda: server.open_connections == 0)
    records = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    assert records[0].exc_info is None
    assert "Traceback" not in capfd.readouterr().err


def test_tls_and_a_silent_tls_client(tmp_path: Path) -> None:
    import ssl

    from tests.falcoctl_py.artifact_helpers import make_ca

    cert, key, ca = make_ca(tmp_path)
    pem = tmp_path / "server.pem"  # Falco's webserver.ssl_certificate: key and cert in one file
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    srv = WebServer(WebEndpoints({}, None), address="127.0.0.1", port=0,
                    ssl_certificate=str(pem), limits=Limits(read_timeout=0.5)).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as silent:
            context = ssl.create_default_context(cafile=str(ca))
            with urllib.request.urlopen(f"https://127.0.0.1:{srv.port}/healthz", timeout=5,
                                        context=context) as resp:
                assert resp.status == 200  # answered while a client stalls its handshake
            assert silent.recv(10) == b""  # the stalled handshake is cut after the timeout
    finally:
        srv.stop()
