"""The registry client against hostile registries: credentials never leave the registry's
origin, pagination is bounded, token replies are checked (issue 10, items 4 and 9)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from falcoctl_py.errors import NetworkError
from falcoctl_py.oci.client import MAX_TAG_PAGES, RegistryClient, RegistryCredentials
from tests.falcoctl_py.oci.hostile import Answer, Hostile, Reply, hostile_server

USER, PASSWORD = "alice", "s3cret"
BASIC = 'Basic realm="hostile"'


def _client(host: str) -> RegistryClient:
    def creds(asked: str) -> RegistryCredentials | None:
        return RegistryCredentials(USER, PASSWORD) if asked == host else None

    return RegistryClient(plain_http=True, credentials=creds, backoff=0.01, max_retries=1)


def _json(body: object, **headers: str) -> Reply:
    return 200, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


def _basic_gate(then: Answer) -> Answer:
    def answer(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
        if not headers.get("authorization"):
            return 401, {"WWW-Authenticate": BASIC}, b"{}"
        return then(server, method, path, headers)

    return answer


def test_next_page_link_to_another_host_is_refused_and_gets_nothing() -> None:
    with hostile_server(lambda *_: _json({"tags": ["evil"]})) as other:
        link = f'<{other.url}/v2/x/tags/list?last=1>; rel="next"'
        with hostile_server(_basic_gate(lambda *_: _json({"tags": ["1.0.0"]}, Link=link))) as reg:
            with _client(reg.host) as client, pytest.raises(NetworkError) as err:
                client.list_tags(f"{reg.host}/x")
            assert reg.with_credentials(), "the registry itself was asked with credentials"
        assert "another origin" in str(err.value) and "\n" not in err.value.one_line()
        assert other.seen == []  # not even asked, let alone with the credentials


def test_endless_pagination_stops_at_the_page_limit() -> None:
    def page(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
        n = len(server.seen)
        return _json({"tags": [f"t{n}"]}, Link=f'</v2/x/tags/list?last=t{n}>; rel="next"')

    with hostile_server(_basic_gate(page)) as reg, _client(reg.host) as client:
        with pytest.raises(NetworkError, match=f"more than {MAX_TAG_PAGES} pages"):
            client.list_tags(f"{reg.host}/x")
        assert len(reg.seen) <= MAX_TAG_PAGES + 1  # + the first, unauthenticated request


def test_a_next_page_loop_is_an_error() -> None:
    link = '</v2/x/tags/list?last=a>; rel="next"'
    with hostile_server(_basic_gate(lambda *_: _json({"tags": ["a"]}, Link=link))) as reg:
        with _client(reg.host) as client, pytest.raises(NetworkError, match="loop"):
            client.list_tags(f"{reg.host}/x")
        assert len(reg.seen) <= 4


def test_same_origin_pagination_is_followed_with_credentials() -> None:
    def page(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
        if "last=" in path:
            return _json({"tags": ["2.0.0"]})
        return _json({"tags": ["1.0.0"]}, Link='</v2/x/tags/list?last=1.0.0&n=1>; rel="next"')

    with hostile_server(_basic_gate(page)) as reg, _client(reg.host) as client:
        assert client.list_tags(f"{reg.host}/x") == ["1.0.0", "2.0.0"]
        assert all(s.authorization.startswith("Basic ") for s in reg.seen[1:])


def test_blob_redirect_to_another_origin_carries_no_credentials() -> None:
    data = b"layer bytes" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with hostile_server(lambda *_: (200, {}, data)) as cdn:
        moved = (307, {"Location": f"{cdn.url}/blob"}, b"")
        with hostile_server(_basic_gate(lambda *_: moved)) as reg, _client(reg.host) as client:
            out = io.BytesIO()
            assert client.get_blob(f"{reg.host}/x", digest, out, max_size=1 << 20) == len(data)
            assert reg.with_credentials()
        assert cdn.seen and cdn.with_credentials() == []


def test_a_challenge_from_a_redirect_target_is_not_answered_with_credentials() -> None:
    def cdn_answer(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
        challenge = f'Bearer realm="{server.url}/token",service="evil"'
        return 401, {"WWW-Authenticate": challenge}, b"{}"

    with hostile_server(cdn_answer) as cdn:
        moved = (307, {"Location": f"{cdn.url}/blob"}, b"")
        with (hostile_server(_basic_gate(lambda *_: moved)) as reg, _client(reg.host) as client,
              pytest.raises(NetworkError)):
            client.get_blob(f"{reg.host}/x", "sha256:" + "0" * 64, io.BytesIO(),
                            max_size=1 << 20)
        assert cdn.with_credentials() == []
        assert all(not s.path.startswith("/token") for s in cdn.seen)


def test_token_reply_without_a_token_is_an_error_not_bearer_none() -> None:
    def answer(server: Hostile, method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/token"):
            return _json({"expires_in": 60})
        if headers.get("authorization", "").startswith("Bearer "):
            return _json({"tags": ["1.0.0"]})
        return 401, {"WWW-Authenticate": f'Bearer realm="{server.url}/token"'}, b"{}"

    with hostile_server(answer) as reg, _client(reg.host) as client:
        with pytest.raises(NetworkError, match="returned no token"):
            client.list_tags(f"{reg.host}/x")
        assert all("None" not in s.authorization for s in reg.seen)
        assert not any(s.authorization.startswith("Bearer") for s in reg.seen)


def test_credentials_are_not_sent_in_clear_text_to_a_realm_on_another_host() -> None:
    with hostile_server(lambda *_: _json({"token": "t"})) as realm:
        challenge = f'Bearer realm="http://localhost:{realm.host.split(":")[1]}/token"'
        refuse = (401, {"WWW-Authenticate": challenge}, b"{}")
        with (hostile_server(lambda *_: refuse) as reg, _client(reg.host) as client,
              pytest.raises(NetworkError, match="clear text")):
            client.list_tags(f"{reg.host}/x")
        assert realm.seen == []
