r"""The HTTP side of the OCI client: one session per client with auth (Basic, Bearer with a token
cache), retries under the one :class:`~falcoctl_py.oci.retry.RetryPolicy`, counters, and errors
as one-line :class:`FalcoctlPyError`\ s (:mod:`.replies`).

Credentials are attached only to requests to the registry's own origin (scheme, host, port) and
challenges are answered only from there, so a redirect target or a link elsewhere never sees
them. Replies (tokens, errors) are read with a size limit and parsed as bounded JSON.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx

from falcoctl_py.errors import NetworkError
from falcoctl_py.http import make_client, same_origin
from falcoctl_py.oci.auth import check_realm, parse_token_reply
from falcoctl_py.oci.replies import MAX_SMALL_REPLY, error_body, status_error, transport_error
from falcoctl_py.oci.retry import RETRY_STATUSES, Attempts, RetryPolicy, retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """What to authenticate with: a username/password pair, or a ready bearer token."""

    username: str = ""
    password: str = ""
    access_token: str = ""

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return f"RegistryCredentials(username={self.username!r}, password=***, access_token=***)"


CredentialsProvider = Callable[[str], RegistryCredentials | None]


@dataclass(slots=True)
class RequestStats:
    """Counters of what the client asked the registries for."""

    requests: int = 0
    manifest_gets: int = 0
    manifest_heads: int = 0
    blob_gets: int = 0
    blob_bytes: int = 0
    blob_pushes: int = 0
    blob_bytes_pushed: int = 0
    tag_lists: int = 0
    token_requests: int = 0
    retries: int = 0

    @property
    def manifest_requests(self) -> int:
        """Manifest GETs and HEADs together."""
        return self.manifest_gets + self.manifest_heads

    def reset(self) -> None:
        """Every counter back to zero."""
        for item in fields(self):
            setattr(self, item.name, 0)


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


_CHALLENGE_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: its scheme and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="...",service="..."`` -> Challenge("bearer", {...}); None when empty."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in params.items()}
    return Challenge(scheme.lower(), params)


class Session:
    """Requests to registries with auth and retries; thread-safe counters, one connection pool."""

    def __init__(
        self,
        *,
        plain_http: bool = False,
        ca_file: Path | None = None,
        insecure_skip_tls_verify: bool = False,
        credentials: CredentialsProvider | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        self.plain_http = plain_http
        self.stats = RequestStats()
        self._credentials = credentials
        self._creds_cache: dict[str, RegistryCredentials | None] = {}
        self.retry = retry or RetryPolicy()
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._schemes: dict[str, tuple[str, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._http = make_client(
            ca_file=ca_file,
            insecure_skip_tls_verify=insecure_skip_tls_verify,
            timeout=timeout,
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


    def base(self, host: str) -> str:
        return f"{'http' if self.plain_http else 'https'}://{host}"

    def count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + n)

    def _creds(self, host: str) -> RegistryCredentials | None:
        if host not in self._creds_cache:
            self._creds_cache[host] = self._credentials(host) if self._credentials else None
        return self._creds_cache[host]

    def _auth_header(self, host: str, scope: str, url: str) -> str | None:
        """The Authorization value for a request to ``url``: none unless ``url`` is on the
        registry's own origin (scheme, host, port), whatever the caller or the registry says."""
        if not same_origin(url, self.base(host)):
            return None
        known = self._schemes.get(host)
        creds = self._creds(host)
        if known is None:
            return None
        scheme, params = known
        if scheme == "basic":
            if creds and creds.username:
                raw = f"{creds.username}:{creds.password}".encode()
                return "Basic " + base64.b64encode(raw).decode()
            return None
        if scheme == "bearer":
            if creds and creds.access_token:
                return f"Bearer {creds.access_token}"
            token = self._tokens.get((host, scope))
            if token is None or token.expires <= time.monotonic():
                token = self._fetch_token(host, params, scope)
            return f"Bearer {token.value}"
        return None

    def _fetch_token(self, host: str, params: dict[str, str], scope: str) -> _Token:
        realm = params.get("realm")
        if not realm:
            raise NetworkError(f"registry {host} sent a Bearer challenge without a realm")
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if scope:
            query["scope"] = scope
        creds = self._creds(host)
        auth = (creds.username, creds.password) if creds and creds.username else None
        if auth is not None:
            check_realm(realm, host)
        self.count("token_requests")
        self.count("requests")
        try:
            req = self._http.build_request("GET", realm, params=query)
            resp = self._http.send(req, auth=auth, stream=True)
        except httpx.HTTPError as err:
            raise NetworkError(
                f"cannot get a token from {realm}: {type(err).__name__}", url=realm
            ) from None
        try:
            return self._token_reply(resp, host, realm, scope)
        finally:
            resp.close()

    def _token_reply(self, resp: httpx.Response, host: str, realm: str, scope: str) -> _Token:
        if resp.status_code in (401, 403):
            raise NetworkError(
                f"the token service of {host} refused the credentials ({resp.status_code})",
                url=realm,
                status=resp.status_code,
                hint=f"check the credentials: falcoctl-py registry auth basic {host}",
            )
        if resp.status_code != 200:
            raise NetworkError(
                f"the token service of {host} answered {resp.status_code}",
                url=realm,
                status=resp.status_code,
            )
        data = bytearray()
        for chunk in resp.iter_bytes():
            data += chunk
            if len(data) > MAX_SMALL_REPLY:
                raise NetworkError(f"the token service of {host} sent an oversized reply")
        value, lifetime = parse_token_reply(bytes(data), realm=realm)
        token = _Token(value, time.monotonic() + max(1.0, lifetime * 0.9))
        self._tokens[(host, scope)] = token
        return token

    def send(
        self,
        method: str,
        url: str,
        *,
        host: str,
        scope: str,
        what: str,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send with auth and retries; return a response whose status is in ``ok``."""
        tries = self.attempts(what)
        reauthed = False
        while True:
            hdrs = dict(headers or {})
            auth = self._auth_header(host, scope, url)
            if auth:
                hdrs["Authorization"] = auth
            self.count("requests")
            try:
                req = self._http.build_request(
                    method, url, headers=hdrs, params=params, content=content
                )
                resp = self._http.send(req, stream=stream)
            except httpx.HTTPError as err:
                if tries.left(self.retry.limit(err)):
                    tries.pause()
                    continue
                raise transport_error(err, host, what, plain_http=self.plain_http) from None
            if resp.status_code == 401 and not reauthed and self._take_challenge(resp, host, scope):
                resp.close()
                reauthed = True
                continue
            if resp.status_code in RETRY_STATUSES and tries.left():
                wait = retry_after(resp)
                resp.close()
                tries.pause(wait)
                continue
            if resp.status_code not in ok:
                body = error_body(resp, stream)
                resp.close()
                raise status_error(resp, host, what, body, plain_http=self.plain_http,
                                   retries=self.retry.max_retries)
            return resp

    def _take_challenge(self, resp: httpx.Response, host: str, scope: str) -> bool:
        """Remember a 401's challenge to answer it; True when the request should be retried.

        A challenge counts only from the registry itself, not from a redirect target."""
        if not same_origin(str(resp.url), self.base(host)):
            return False
        parsed = parse_challenge(resp.headers.get("WWW-Authenticate", "")) or Challenge("")
        creds = self._creds(host)
        if parsed.scheme == "bearer" or (parsed.scheme == "basic" and creds and creds.username):
            self._schemes[host] = (parsed.scheme, parsed.params)
            self._tokens.pop((host, scope), None)
            return True
        return False

    def attempts(self, what: str) -> Attempts:
        """The attempts of one request under this session's retry policy (counted in stats)."""
        return Attempts(self.retry, what, on_retry=lambda: self.count("retries"))
