"""Socket ends from event arguments, and Falco's socket fd.name."""

from __future__ import annotations

from detector.events import FdInfo
from detector.state.sockets import parse_endpoint, parse_tuple, set_ends, socket_name


def test_endpoint_forms() -> None:
    assert parse_endpoint(("10.0.0.1", 80)) == ("10.0.0.1", 80)
    assert parse_endpoint({"ip": "10.0.0.1", "port": 80}) == ("10.0.0.1", 80)
    assert parse_endpoint({"path": "/run/x.sock"}) == "/run/x.sock"
    assert parse_endpoint(b"[::1]:8080") == ("::1", 8080)
    assert parse_endpoint("@abstract") == "@abstract"
    assert parse_endpoint("no port") is None and parse_endpoint(None) is None
    assert parse_tuple("1.2.3.4:5->6.7.8.9:10") == (("1.2.3.4", 5), ("6.7.8.9", 10))
    assert parse_tuple("/tmp/sock") is None


def test_client_and_server_ends_give_the_same_name() -> None:
    client = FdInfo(num=3, type="ipv4")
    set_ends(client, ("10.0.0.1", 40000), ("10.0.0.2", 443), server=False)
    server = FdInfo(num=4, type="ipv4")
    set_ends(server, ("10.0.0.2", 443), ("10.0.0.1", 40000), server=True)
    assert socket_name(client) == socket_name(server) == "10.0.0.1:40000->10.0.0.2:443"
    assert client.name_changed and not client.is_server and server.is_server
