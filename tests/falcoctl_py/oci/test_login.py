"""Checking credentials against real registries and token endpoints before storing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falcoctl_py.config import OAuthClient, load_config
from falcoctl_py.errors import AuthError, NetworkError
from falcoctl_py.oci.auth import (
    BasicCredentials,
    cached_token,
    fetch_oauth_token,
    oauth_token_for,
    read_client_credentials,
    read_docker_credentials,
)
from falcoctl_py.oci.login import (
    login_basic,
    login_oauth,
    ping,
)
from tests.falcoctl_py.authservers import auth_server
from tests.realparts import Registry, free_port


def test_basic_login_against_htpasswd_registry(
    isolated_home: Path, auth_registry: Registry
) -> None:
    config = load_config(isolated_home / "f.yaml")
    result = login_basic(host=auth_registry.ref("some/repo", "1"), username="alice",
                         password="s3cret", config=config, plain_http=True)
    assert result.registry == auth_registry.host and result.scheme == "basic"
    assert read_docker_credentials(config.registry.creds_config, auth_registry.host) == (
        BasicCredentials("alice", "s3cret"))


def test_wrong_password_is_refused_and_nothing_stored(
    isolated_home: Path, auth_registry: Registry
) -> None:
    config = load_config(isolated_home / "f.yaml")
    with pytest.raises(AuthError, match="refused the credentials") as err:
        login_basic(host=auth_registry.host, username="alice", password="wrong-pw",
                    config=config, plain_http=True)
    assert "wrong-pw" not in err.value.one_line()
    assert not config.registry.creds_config.exists()


def test_registry_down_is_a_network_error(isolated_home: Path) -> None:
    with pytest.raises(NetworkError, match="cannot reach the registry"):
        ping(f"127.0.0.1:{free_port()}", BasicCredentials("u", "p"), plain_http=True)


def test_bearer_challenge_token_flow(isolated_home: Path) -> None:
    with auth_server() as server:
        host = server.url.removeprefix("http://")
        assert ping(host, BasicCredentials("alice", "s3cret"), plain_http=True) == "bearer"
        token_request = next(r for r in server.requests if r[0].startswith("/auth"))
        assert "service=test-registry" in token_request[0]
        with pytest.raises(AuthError, match="token service"):
            ping(host, BasicCredentials("alice", "nope"), plain_http=True)


def test_oauth_login_validates_and_stores(isolated_home: Path) -> None:
    with auth_server() as server:
        result = login_oauth(host="reg.example:5000", client_id="cid", client_secret="csecret",
                             token_url=f"{server.url}/token", scopes=["pull", "push"])
        assert result.registry == "reg.example:5000"
        stored = read_client_credentials("reg.example:5000")
        assert stored == OAuthClient("reg.example:5000", "cid", "csecret",
                                     f"{server.url}/token", ["pull", "push"])
        assert json.loads(result.store.read_text())["reg.example:5000"]["ClientID"] == "cid"
        token = cached_token("reg.example:5000", client_id="cid")
        assert token is not None and token.access_token.startswith("tok-")
        body = server.requests[0][2]
        assert "scope=pull+push" in body and "csecret" not in body  # secret in the header


def test_oauth_wrong_secret_stores_nothing(isolated_home: Path) -> None:
    with auth_server() as server, pytest.raises(AuthError, match="refused the client"):
        login_oauth(host="reg.example", client_id="cid", client_secret="bad",
                    token_url=f"{server.url}/token")
    assert read_client_credentials("reg.example") is None


def test_oauth_secret_in_body_when_server_wants_it(isolated_home: Path) -> None:
    with auth_server(body_style_only=True) as server:
        token = fetch_oauth_token(OAuthClient("r", "cid", "csecret", f"{server.url}/token"))
        assert token.access_token.startswith("tok-") and token.expires_at > 0


def test_oauth_token_for_uses_config_and_caches(isolated_home: Path) -> None:
    with auth_server() as server:
        config = load_config(isolated_home / "f.yaml", env={
            "FALCOCTL_REGISTRY_AUTH_OAUTH": f"reg.example,cid,csecret,{server.url}/token"})
        first = oauth_token_for("reg.example", config)
        second = oauth_token_for("reg.example", config)
        assert first is not None and first == second
        assert len([r for r in server.requests if r[0] == "/token"]) == 1
        assert oauth_token_for("other.example", config) is None
        assert cached_token("reg.example", client_id="someone-else") is None
