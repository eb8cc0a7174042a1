"""Registry credentials: Docker's ``config.json``, falcoctl's ``clientcredentials.json``, and the
``registry.auth`` entries of the config; the lookups the OCI client uses.

Lookup order per registry host (falcoctl's): basic entries of the config or environment, then
the Docker credential store (a credential helper when one is configured, else the base64
``auth`` field), then OAuth2 client credentials. Files holding secrets are written 0600; no
secret ever reaches a log line, an error message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from falcoctl_py.bounded import loads_json
from falcoctl_py.config import Config, OAuthClient, user_config_dir
from falcoctl_py.errors import AuthError, ConfigError, NetworkError
from falcoctl_py.http import make_client
from falcoctl_py.textio import write_atomic

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """A username and password for a registry."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OAuthToken:
    """An access token and when it expires (epoch seconds; 0 = unknown)."""

    access_token: str = field(repr=False)
    expires_at: float = 0.0

    def valid(self, *, margin: float = 30.0) -> bool:
        return self.expires_at == 0.0 or time.time() + margin < self.expires_at


def registry_host(ref_or_host: str) -> str:
    """The registry part of a host or a full reference (``ghcr.io/a/b:1`` -> ``ghcr.io``)."""
    text = ref_or_host.strip()
    for prefix in ("https://", "http://", "oci://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    return text.split("/", 1)[0].lower()


def _write_secret_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        write_atomic(path, (json.dumps(data, indent="\t") + "\n").encode(), mode=0o600)
    except OSError as err:
        raise ConfigError(f"cannot write the credential store: {err.strerror}",
                          path=str(path)) from err


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"cannot read the credential store: {err.strerror}",
                          path=str(path)) from err
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"invalid JSON at line {err.lineno}", path=str(path),
                          hint="fix or remove the file") from err
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a JSON object", path=str(path))
    return data


# ---------------------------------------------------------------------------------------------
# Docker's config.json


def _docker_key(host: str) -> str:
    return DOCKER_HUB_KEY if host in _DOCKER_HUB_ALIASES else host


def _helper_for(data: dict[str, Any], host: str) -> str | None:
    helpers = data.get("credHelpers") or {}
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return str(helpers[host])
    store = data.get("credsStore")
    return str(store) if isinstance(store, str) and store else None


def _run_helper(helper: str, action: str, payload: str) -> str | None:
    binary = shutil.which(f"docker-credential-{helper}")
    if binary is None:
        return None
    proc = subprocess.run([binary, action], input=payload, capture_output=True, text=True,
                          check=False, timeout=30)
    return proc.stdout if proc.returncode == 0 else None


def read_docker_credentials(path: Path, host: str) -> BasicCredentials | None:
    """Credentials for ``host`` from a Docker ``config.json`` (or its credential helper)."""
    data = _read_json(path)
    key = _docker_key(registry_host(host))
    helper = _helper_for(data, key)
    if helper is not None:
        out = _run_helper(helper, "get", key)
        if out:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                got = json.loads(out)
                return BasicCredentials(str(got["Username"]), str(got["Secret"]))
    auths = data.get("auths") or {}
    if not isinstance(auths, dict):
        return None
    for stored_key, entry in auths.items():
        if registry_host(str(stored_key)) != registry_host(key) and stored_key != key:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as err:
                raise ConfigError(f"the auth field for {stored_key} is not valid base64",
                                  path=str(path)) from err
            return BasicCredentials(user, password)
        if entry.get("username"):
            return BasicCredentials(str(entry["username"]), str(entry.get("password") or ""))
    return None


def store_docker_credentials(path: Path, host: str, creds: BasicCredentials) -> None:
    """Store credentials for ``host`` in a Docker ``config.json`` (0600), other keys kept."""
    data = _read_json(path)
    key = _docker_key(registry_host(host))
    helper = _helper_for(data, key)
    if helper is not None:
        payload = json.dumps({"ServerURL": key, "Username": creds.username,
                              "Secret": creds.password})
        if _run_helper(helper, "store", payload) is not None:
            return
    auths = data.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[key] = {"auth": token}
    data["auths"] = auths
    _write_secret_file(path, data)


def remove_docker_credentials(path: Path, host: str) -> bool:
    """Forget the stored credentials of ``host``; True when there were some."""
    data = _read_json(path)
    auths = data.get("auths") or {}
    key = _docker_key(registry_host(host))
    if not isinstance(auths, dict) or key not in auths:
        return False
    del auths[key]
    _write_secret_file(path, data)
    return True


# ---------------------------------------------------------------------------------------------
# clientcredentials.json (golang.org/x/oauth2/clientcredentials.Config per registry)


def client_credentials_path() -> Path:
    return user_config_dir() / "clientcredentials.json"


def read_client_credentials(host: str, path: Path | None = None) -> OAuthClient | None:
    """The stored OAuth2 client of ``host``."""
    data = _read_json(path or client_credentials_path())
    host = registry_host(host)
    for key, entry in data.items():
        if registry_host(key) == host and isinstance(entry, dict):
            return OAuthClient(
                registry=host, client_id=str(entry.get("ClientID") or ""),
                client_secret=str(entry.get("ClientSecret") or ""),
                token_url=str(entry.get("TokenURL") or ""),
                scopes=[str(s) for s in entry.get("Scopes") or []],
            )
    return None


def store_client_credentials(client: OAuthClient, path: Path | None = None) -> Path:
    """Store an OAuth2 client in ``clientcredentials.json`` (0600)."""
    path = path or client_credentials_path()
    data = _read_json(path)
    data[registry_host(client.registry)] = {
        "ClientID": client.client_id, "ClientSecret": client.client_secret,
        "TokenURL": client.token_url, "Scopes": list(client.scopes),
        "EndpointParams": None, "AuthStyle": 0,
    }
    _write_secret_file(path, data)
    return path


def token_cache_path() -> Path:
    return user_config_dir() / "oauthtokens.json"


def cached_token(host: str, *, client_id: str = "") -> OAuthToken | None:
    """A cached, still valid OAuth2 access token for ``host`` (issued to ``client_id``)."""
    with contextlib.suppress(ConfigError):
        entry = _read_json(token_cache_path()).get(registry_host(host))
        if (isinstance(entry, dict) and entry.get("access_token")
                and str(entry.get("client_id") or "") == client_id):
            token = OAuthToken(str(entry["access_token"]), float(entry.get("expires_at") or 0))
            if token.valid():
                return token
    return None


def cache_token(host: str, token: OAuthToken, *, client_id: str = "") -> None:
    """Keep an access token for its lifetime (0600 file)."""
    with contextlib.suppress(ConfigError):
        data = _read_json(token_cache_path())
        now = time.time()
        data = {k: v for k, v in data.items()
                if isinstance(v, dict) and float(v.get("expires_at") or 0) > now}
        data[registry_host(host)] = {"access_token": token.access_token,
                                     "expires_at": token.expires_at, "client_id": client_id}
        _write_secret_file(token_cache_path(), data)


# ---------------------------------------------------------------------------------------------
# token services


def parse_token_reply(data: bytes, *, realm: str) -> tuple[str, float]:
    """The token and its lifetime (seconds) in a token service's JSON reply.

    A reply without a token (or with one that is not a non-empty string) is an error, never
    the bearer token ``"None"``."""
    try:
        body = loads_json(data, where=f"the reply of the token service {realm}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise NetworkError(f"the token service {realm} did not answer with a JSON object",
                           url=realm)
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token.strip() or len(token) > 64 * 1024:
        raise NetworkError(f"the token service {realm} returned no token", url=realm,
                           hint="check the registry's token service")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = 60
    return token, min(float(lifetime), 7 * 24 * 3600.0)


def check_realm(realm: str, registry: str) -> None:
    """Refuse to send credentials to a token realm in clear text on another host.

    A registry names its token service; it is asked over https, or on the registry's own host
    (a plain-HTTP registry and its token service side by side)."""
    try:
        url = httpx.URL(realm)
    except httpx.InvalidURL:
        raise NetworkError(f"the registry {registry} named an invalid token realm") from None
    if url.scheme not in ("http", "https"):
        raise NetworkError(f"the registry {registry} named a token realm that is not http(s)")
    if url.scheme == "https":
        return
    try:
        host = httpx.URL(f"http://{registry_host(registry)}/").host
    except httpx.InvalidURL:
        host = ""
    if url.host.lower() != host.lower():
        raise NetworkError(
            f"the registry {registry_host(registry)} asks to send the credentials in clear text "
            f"to another host ({url.host})",
            hint="the token service must use https, or be on the registry's host",
        )


# ---------------------------------------------------------------------------------------------
# OAuth2 client credentials grant


def fetch_oauth_token(
    client: OAuthClient, *, ca_file: Path | None = None, insecure_skip_tls_verify: bool = False,
) -> OAuthToken:
    """Run the client-credentials grant at the token URL (secret in the Authorization header,
    then in the form body if the server wants it there)."""
    url = client.token_url
    form = {"grant_type": "client_credentials"}
    if client.scopes:
        form["scope"] = " ".join(client.scopes)
    quote = urllib.parse.quote_plus
    try:
        with make_client(ca_file=ca_file, insecure_skip_tls_verify=insecure_skip_tls_verify,
                         timeout=30.0, follow_redirects=False) as http:
            response = http.post(url, data=form,
                                 auth=(quote(client.client_id), quote(client.client_secret)))
            if response.status_code in (400, 401):
                response = http.post(url, data={**form, "client_id": client.client_id,
                                                "client_secret": client.client_secret})
    except httpx.HTTPError as err:
        raise NetworkError(f"cannot reach the token endpoint {url}: {type(err).__name__}",
                           url=url, hint="check --token-url") from err
    if response.status_code in (400, 401, 403):
        raise AuthError(f"the token endpoint {url} refused the client credentials "
                        f"(HTTP {response.status_code})", url=url,
                        status=response.status_code, hint="check --client-id and --client-secret")
    if response.status_code >= 300:
        raise NetworkError(f"the token endpoint {url} answered HTTP {response.status_code}",
                           url=url, status=response.status_code)
    try:
        body = loads_json(response.content, where=f"the reply of the token endpoint {url}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not (
        body["access_token"]
    ):
        raise NetworkError(f"the token endpoint {url} returned no access_token", url=url)
    token = str(body["access_token"])
    expires_in = body.get("expires_in")
    known = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    expires = time.time() + float(expires_in) if known and expires_in else 0.0
    return OAuthToken(token, expires)


# ---------------------------------------------------------------------------------------------
# lookups for the OCI client


def credentials_for(host: str, config: Config) -> BasicCredentials | None:
    """Basic credentials for a registry: config/env entries first, then Docker's store."""
    host = registry_host(host)
    for entry in config.registry.auth_basic:
        if registry_host(entry.registry) == host:
            return BasicCredentials(entry.user, entry.password)
    return read_docker_credentials(config.registry.creds_config, host)


def oauth_for(host: str, config: Config) -> OAuthClient | None:
    """The OAuth2 client of a registry: config/env entries first, then clientcredentials.json."""
    host = registry_host(host)
    for entry in config.registry.auth_oauth:
        if registry_host(entry.registry) == host:
            return dataclasses.replace(entry, registry=host, scopes=list(entry.scopes))
    return read_client_credentials(host)


def oauth_token_for(host: str, config: Config, *, ca_file: Path | None = None,
                    insecure_skip_tls_verify: bool = False) -> str | None:
    """A valid OAuth2 access token for ``host`` (cached, or fetched and cached), or None."""
    client = oauth_for(host, config)
    if client is None:
        return None
    token = cached_token(host, client_id=client.client_id)
    if token is None:
        token = fetch_oauth_token(client, ca_file=ca_file,
                                  insecure_skip_tls_verify=insecure_skip_tls_verify)
        cache_token(host, token, client_id=client.client_id)
    return token.access_token
