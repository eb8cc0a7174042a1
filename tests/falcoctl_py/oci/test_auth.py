"""Credential stores and the lookups the OCI client uses."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import pytest

from falcoctl_py.config import OAuthClient, load_config
from falcoctl_py.errors import ConfigError
from falcoctl_py.oci.auth import (
    BasicCredentials,
    OAuthToken,
    cache_token,
    cached_token,
    client_credentials_path,
    credentials_for,
    oauth_for,
    read_client_credentials,
    read_docker_credentials,
    registry_host,
    remove_docker_credentials,
    store_client_credentials,
    store_docker_credentials,
)


def test_registry_host_from_refs() -> None:
    assert registry_host("ghcr.io/falcosecurity/rules/falco-rules:3") == "ghcr.io"
    assert registry_host("localhost:5000") == "localhost:5000"
    assert registry_host("https://Registry.Example/v2/") == "registry.example"


def test_docker_store_round_trip_0600_keeps_other_keys(isolated_home: Path) -> None:
    path = isolated_home / ".docker" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"other:1": {"auth": "eDp5"}}, "psFormat": "table"}))
    store_docker_credentials(path, "reg.example:5000/org/repo:1", BasicCredentials("al", "p:w"))
    data = json.loads(path.read_text())
    assert data["psFormat"] == "table" and "other:1" in data["auths"]
    assert base64.b64decode(data["auths"]["reg.example:5000"]["auth"]) == b"al:p:w"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_docker_credentials(path, "reg.example:5000") == BasicCredentials("al", "p:w")
    assert read_docker_credentials(path, "nope.example") is None
    assert remove_docker_credentials(path, "reg.example:5000") is True
    assert read_docker_credentials(path, "reg.example:5000") is None


def test_docker_hub_uses_dockers_key(isolated_home: Path) -> None:
    path = isolated_home / "config.json"
    store_docker_credentials(path, "docker.io", BasicCredentials("u", "p"))
    assert "https://index.docker.io/v1/" in json.loads(path.read_text())["auths"]
    assert read_docker_credentials(path, "docker.io") == BasicCredentials("u", "p")


def test_docker_keys_written_by_docker_login_are_found(isolated_home: Path) -> None:
    path = isolated_home / "config.json"
    path.write_text(json.dumps({"auths": {"https://reg.example/v1/": {
        "auth": base64.b64encode(b"u:p").decode()}}}))
    assert read_docker_credentials(path, "reg.example") == BasicCredentials("u", "p")


def test_corrupt_docker_store_is_a_config_error(isolated_home: Path) -> None:
    path = isolated_home / "config.json"
    path.write_text('{"auths": ')
    with pytest.raises(ConfigError, match="invalid JSON") as err:
        read_docker_credentials(path, "x")
    assert str(path) in str(err.value)


def test_credentials_for_prefers_config_entries(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = isolated_home / "d" / "config.json"
    monkeypatch.setenv("DOCKER_CONFIG", str(docker.parent))
    store_docker_credentials(docker, "a.example", BasicCredentials("stored", "s"))
    store_docker_credentials(docker, "b.example", BasicCredentials("stored-b", "s"))
    monkeypatch.setenv("FALCOCTL_REGISTRY_AUTH_BASIC", "a.example/org/repo,fromenv,e")
    config = load_config(isolated_home / "f.yaml")
    assert credentials_for("a.example", config) == BasicCredentials("fromenv", "e")
    assert credentials_for("b.example", config) == BasicCredentials("stored-b", "s")
    assert credentials_for("c.example", config) is None


def test_client_credentials_file_format(isolated_home: Path) -> None:
    client = OAuthClient("reg.example", "cid", "csecret", "http://t/token", ["a", "b"])
    path = store_client_credentials(client)
    assert path == isolated_home / ".config" / "falcoctl" / "clientcredentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["reg.example"] == {
        "ClientID": "cid", "ClientSecret": "csecret", "TokenURL": "http://t/token",
        "Scopes": ["a", "b"], "EndpointParams": None, "AuthStyle": 0}
    assert read_client_credentials("reg.example/org/x:1") == client
    assert "csecret" not in repr(client)
    assert client_credentials_path() == path


def test_oauth_for_prefers_config_entries(isolated_home: Path) -> None:
    store_client_credentials(OAuthClient("r.example", "stored", "s", "http://t/token"))
    config = load_config(isolated_home / "f.yaml", env={
        "FALCOCTL_REGISTRY_AUTH_OAUTH": "q.example,envid,envsecret,http://e/token"})
    from_env = oauth_for("q.example", config)
    assert from_env is not None and from_env.client_id == "envid"
    stored = oauth_for("r.example", config)
    assert stored is not None and stored.client_id == "stored"
    assert oauth_for("z.example", config) is None


def test_token_cache_honours_expiry(isolated_home: Path) -> None:
    cache_token("r.example", OAuthToken("tok-1", time.time() + 3600))
    cache_token("old.example", OAuthToken("tok-2", time.time() + 5))  # inside the margin
    token = cached_token("r.example")
    assert token is not None and token.access_token == "tok-1"
    assert cached_token("old.example") is None
    assert "tok-1" not in repr(token)


HELPER = """#!/bin/sh
# A docker credential helper keeping its secrets in $HELPER_STORE (one JSON document).
case "$1" in
  store) cat > "$HELPER_STORE" ;;
  get) read host; if [ -s "$HELPER_STORE" ]; then cat "$HELPER_STORE"; else
       echo "credentials not found in native keychain"; exit 1; fi ;;
  *) exit 1 ;;
esac
"""


def test_credential_helper_is_used_for_get_and_store(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = isolated_home / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("HELPER_STORE", str(isolated_home / "helper.json"))
    path = isolated_home / "config.json"
    path.write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    assert read_docker_credentials(path, "reg.example") is None
    store_docker_credentials(path, "reg.example", BasicCredentials("hu", "hp"))
    assert "auths" not in json.loads(path.read_text())  # the secret went to the helper
    stored = json.loads((isolated_home / "helper.json").read_text())
    assert stored == {"ServerURL": "reg.example", "Username": "hu", "Secret": "hp"}
    assert read_docker_credentials(path, "reg.example") == BasicCredentials("hu", "hp")
