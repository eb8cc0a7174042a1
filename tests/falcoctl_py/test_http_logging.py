"""httpx's log lines, from every client of the one factory: quiet below DEBUG, never a secret."""

from __future__ import annotations

import logging

import pytest

from detector.outputs.http import HttpSink
from falcoctl_py.oci.client import RegistryClient
from tests.falcoctl_py.oci.hostile import Hostile, Reply, hostile_server

SECRET = "s3cret-in-url"


def _http_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.partition(".")[0] in
            ("httpx", "httpcore")]


def _registry(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
    """A registry whose token realm carries credentials in its URL (a hostile or sloppy one)."""
    if path.startswith("/token"):
        return 200, {"Content-Type": "application/json"}, b'{"token": "t0k"}'
    if headers.get("authorization") != "Bearer t0k":
        realm = server.url.replace("http://", f"http://tok:{SECRET}@") + "/token"
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="r"'}, b""
    return 200, {"Content-Type": "application/json"}, b'{"name": "a", "tags": ["1.0.0"]}'


def test_registry_client_logs_no_url_credentials_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        hostile_server(_registry) as server,
        caplog.at_level(logging.DEBUG),
        RegistryClient(plain_http=True) as client,
    ):
        assert client.list_tags(f"{server.host}/a") == ["1.0.0"]
    lines = _http_lines(caplog)
    assert any("/token" in line for line in lines)  # the request lines are there, at DEBUG
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_http_output_logs_no_url_credentials_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with hostile_server(lambda *_: (503, {}, b"down")) as server, caplog.at_level(logging.DEBUG):
        url = server.url.replace("http://", f"http://user:{SECRET}@") + "/alerts"
        sink = HttpSink(url, json_output=True, retries=1, client_options={"user_agent": "ua"})
        try:
            with pytest.raises(RuntimeError) as failed:
                sink.write('{"rule": "r"}', None)
        finally:
            sink.close()
        assert len(server.seen) == 2 and server.seen[0].authorization.startswith("Basic ")
    assert any("/alerts" in line for line in _http_lines(caplog))
    assert SECRET not in str(failed.value) and "***@" in str(failed.value)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_http_request_lines_stay_out_of_an_info_log(caplog: pytest.LogCaptureFixture) -> None:
    with hostile_server(lambda *_: (200, {}, b"ok")) as server, caplog.at_level(logging.INFO):
        sink = HttpSink(server.url, json_output=False, retries=0,
                        client_options={"user_agent": "u"})
        try:
            sink.write("alert", None)
        finally:
            sink.close()
        assert len(server.seen) == 1
    assert _http_lines(caplog) == []
