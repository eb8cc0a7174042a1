"""The one retry policy: how many retries each failure earns and how long each wait is."""

from __future__ import annotations

import httpx
import pytest

from falcoctl_py.errors import NetworkError
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.retry import Attempts, RetryPolicy
from tests.falcoctl_py.oci.hostile import Hostile, Reply, hostile_server


def test_waits_double_from_the_backoff_and_stop_at_the_limit() -> None:
    waits: list[float] = []
    tries = Attempts(RetryPolicy(max_retries=3, max_wait=0.6, backoff=0.25), "x",
                     sleep=waits.append)
    while tries.left():
        tries.pause()
    assert waits == [0.25, 0.5, 0.6]  # doubled, then capped
    assert tries.made == 3 and not tries.left()


def test_a_servers_retry_after_is_honoured_up_to_the_cap() -> None:
    waits: list[float] = []
    tries = Attempts(RetryPolicy(max_wait=10.0), "x", sleep=waits.append)
    tries.pause(3.0)
    tries.pause(86400.0)  # a hostile or broken Retry-After cannot stall the client for a day
    assert waits == [3.0, 10.0]


def test_a_refused_connection_earns_one_retry_a_cut_one_all() -> None:
    policy = RetryPolicy(max_retries=3)
    request = httpx.Request("GET", "http://127.0.0.1/")
    assert policy.limit(httpx.ConnectError("refused", request=request)) == 1
    assert policy.limit(httpx.ReadError("cut", request=request)) == 3
    assert policy.limit(httpx.TooManyRedirects("loop", request=request)) == 0
    assert RetryPolicy(max_retries=0).limit(httpx.ConnectError("refused", request=request)) == 0


def _busy_then_ok(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
    if len(server.seen) <= 2:
        return 429, {"Retry-After": "86400"}, b""
    return 200, {"Content-Type": "application/json"}, b'{"name": "a", "tags": ["1.0.0"]}'


def test_the_client_retries_a_rate_limit_within_its_cap() -> None:
    with hostile_server(_busy_then_ok) as server, RegistryClient(
        plain_http=True, max_retries=2, max_retry_wait=0.01
    ) as client:
        assert client.list_tags(f"{server.host}/a") == ["1.0.0"]
        assert client.stats.retries == 2 and len(server.seen) == 3


def test_the_client_gives_up_after_its_retries() -> None:
    with hostile_server(lambda *_: (503, {}, b"")) as server, RegistryClient(
        plain_http=True, max_retries=2, backoff=0.001
    ) as client, pytest.raises(NetworkError) as err:
        client.list_tags(f"{server.host}/a")
    assert len(server.seen) == 3 and "answered 503" in err.value.one_line()
