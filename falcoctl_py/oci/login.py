"""Logging in to registries: check credentials against ``/v2/`` (Basic and Bearer challenges),
fetch OAuth2 client-credentials tokens, and store what worked.

Credentials are stored only after the registry (or token endpoint) accepted them, so wrong
credentials leave the stores untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx

from falcoctl_py.config import Config, OAuthClient
from falcoctl_py.errors import AuthError, NetworkError, UsageError
from falcoctl_py.http import make_client
from falcoctl_py.oci.auth import (
    BasicCredentials,
    OAuthToken,
    cache_token,
    check_realm,
    fetch_oauth_token,
    parse_token_reply,
    registry_host,
    store_client_credentials,
    store_docker_credentials,
)
from falcoctl_py.oci.client import Challenge, parse_challenge


@dataclass(frozen=True, slots=True)
class LoginResult:
    """Where the credentials of a registry were stored."""

    registry: str
    store: Path
    scheme: str = ""


def bearer_token(
    client: httpx.Client, challenge: Challenge, creds: BasicCredentials | None, *,
    registry: str, scope: str | None = None,
) -> OAuthToken:
    """Ask the realm of a Bearer challenge for a token (with Basic credentials when given)."""
    realm = challenge.params.get("realm")
    if not realm:
        raise NetworkError("the registry's Bearer challenge has no realm")
    if creds is not None:
        check_realm(realm, registry)
    query = {k: v for k, v in (("service", challenge.params.get("service")),
                               ("scope", scope or challenge.params.get("scope"))) if v}
    auth = (creds.username, creds.password) if creds else None
    try:
        response = client.get(realm, params=query, auth=auth)
    except httpx.HTTPError as err:
        raise NetworkError(f"cannot reach the token service {realm}: {type(err).__name__}",
                           url=realm) from err
    if response.status_code in (401, 403):
        raise AuthError(f"the token service {realm} refused the credentials "
                        f"(HTTP {response.status_code})", url=realm,
                        status=response.status_code, hint="check the username and password")
    if response.status_code >= 400:
        raise NetworkError(f"the token service {realm} answered HTTP {response.status_code}",
                           url=realm, status=response.status_code)
    token, lifetime = parse_token_reply(response.content, realm=realm)
    return OAuthToken(token, time.time() + lifetime)


def ping(
    host: str, creds: BasicCredentials | None = None, *, plain_http: bool = False,
    ca_file: Path | None = None, insecure_skip_tls_verify: bool = False,
    bearer: str | None = None,
) -> str:
    """GET ``/v2/`` with the credentials; returns the scheme used ("", "basic", "bearer").

    Raises AuthError when the registry refuses the credentials."""
    url = f"{'http' if plain_http else 'https'}://{registry_host(host)}/v2/"
    try:
        with make_client(ca_file=ca_file, insecure_skip_tls_verify=insecure_skip_tls_verify,
                         timeout=30.0) as client:
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            response = client.get(url, headers=headers)
            if response.status_code == 200:
                return "bearer" if bearer else ""
            if response.status_code != 401 or bearer:
                _refused(url, response.status_code)
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None or creds is None:
                raise AuthError(f"the registry {url} needs credentials", url=url, status=401,
                                hint="pass a username and password")
            if challenge.scheme == "basic":
                response = client.get(url, auth=(creds.username, creds.password))
                if response.status_code == 200:
                    return "basic"
                _refused(url, response.status_code)
            if challenge.scheme == "bearer":
                token = bearer_token(client, challenge, creds, registry=url)
                response = client.get(url, headers={"Authorization":
                                                    f"Bearer {token.access_token}"})
                if response.status_code == 200:
                    return "bearer"
                _refused(url, response.status_code)
            raise NetworkError(f"the registry {url} asks for unsupported authentication "
                               f"{challenge.scheme!r}", url=url)
    except httpx.HTTPError as err:
        raise NetworkError(
            f"cannot reach the registry {url}: {type(err).__name__}: {err}", url=url,
            hint="check the host; use --plain-http for a registry without TLS, --ca-file for "
            "a private CA",
        ) from err


def _refused(url: str, status: int) -> NoReturn:
    if status in (401, 403):
        raise AuthError(f"the registry {url} refused the credentials (HTTP {status})",
                        url=url, status=status, hint="check the username and password")
    raise NetworkError(f"the registry {url} answered HTTP {status}", url=url, status=status,
                       hint="check that the host is an OCI registry")


def login_basic(
    *, host: str, username: str, password: str, config: Config, plain_http: bool = False,
    ca_file: Path | None = None, insecure_skip_tls_verify: bool = False,
) -> LoginResult:
    """Check Basic credentials against the registry, then store them in Docker's config.json."""
    if not username or not password:
        raise UsageError("a username and a password are needed",
                         hint="pass -u and -p, or --password-stdin")
    registry = registry_host(host)
    creds = BasicCredentials(username, password)
    scheme = ping(registry, creds, plain_http=plain_http, ca_file=ca_file,
                  insecure_skip_tls_verify=insecure_skip_tls_verify)
    store_docker_credentials(config.registry.creds_config, registry, creds)
    return LoginResult(registry, config.registry.creds_config, scheme)


def login_oauth(
    *, host: str, client_id: str, client_secret: str, token_url: str,
    scopes: list[str] | None = None, ca_file: Path | None = None,
    insecure_skip_tls_verify: bool = False,
) -> LoginResult:
    """Fetch a token with the client credentials, then store them (and cache the token)."""
    if not token_url.startswith(("http://", "https://")):
        raise UsageError(f"invalid token URL {token_url!r}", hint="use an http(s):// URL")
    registry = registry_host(host)
    client = OAuthClient(registry, client_id, client_secret, token_url, list(scopes or []))
    token = fetch_oauth_token(client, ca_file=ca_file,
                              insecure_skip_tls_verify=insecure_skip_tls_verify)
    path = store_client_credentials(client)
    cache_token(registry, token, client_id=client_id)
    return LoginResult(registry, path, "oauth")
