"""The OCI distribution client over httpx: auth (Basic, Bearer with token cache), retries, counters.

Every method takes ``repository`` as ``host[:port]/path`` so one client serves several registries.
Nothing here prints; errors are :class:`FalcoctlPyError` subclasses with one-line messages that
never carry credentials.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import (
    FalcoctlPyError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    UsageError,
)
from falcoctl_py.http import make_client, same_origin
from falcoctl_py.oci.auth import check_realm, parse_token_reply
from falcoctl_py.oci.media import MANIFEST_ACCEPT, OCI_INDEX, Descriptor

log = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 4 * 1024 * 1024
MAX_SMALL_REPLY = 1024 * 1024  # token replies, tag-list pages, referrers, error bodies
MAX_TAG_PAGES = 100
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK = 1 << 16


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


@dataclass(frozen=True, slots=True)
class ManifestResult:
    """A manifest or image index as fetched: raw bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_repository(repository: str) -> tuple[str, str]:
    """``host/path`` -> (host, path)."""
    host, _, path = repository.partition("/")
    if not path:
        raise UsageError(
            f"repository {repository!r} has no registry host",
            hint="give a full reference: HOST/REPOSITORY[:TAG|@DIGEST]",
        )
    return host, path


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


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _error_body(resp: httpx.Response, stream: bool) -> bytes:
    """At most ``MAX_SMALL_REPLY`` bytes of an error response's body."""
    if not stream:
        return resp.content[:MAX_SMALL_REPLY]
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > MAX_SMALL_REPLY:
                break
    except httpx.HTTPError:  # a cut error body: the status says enough
        pass
    return bytes(buf[:MAX_SMALL_REPLY])


def _registry_error(data: bytes) -> str:
    """The first error code/message of an OCI error body, if any (untrusted, kept short)."""
    try:
        body = loads_json(data, where="error body")
        err = body["errors"][0]
        text = f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")
    except (ValueError, LookupError, TypeError, AttributeError, FalcoctlPyError):
        # not an OCI error body (or a hostile one): the status alone is reported
        return ""
    return " ".join(text.split())[:200]


def _small_json(resp: httpx.Response, *, where: str) -> Any:
    """The JSON body of a streamed response, at most ``MAX_SMALL_REPLY`` bytes; None if not JSON."""
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) > MAX_SMALL_REPLY:
            raise IntegrityError(f"{where} is over the limit of {MAX_SMALL_REPLY} bytes")
    try:
        return loads_json(bytes(buf), where=where)
    except ValueError:
        return None


# what OpenSSL says when a TLS client hello is answered by plain HTTP
_PLAIN_HTTP_MARKS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                     "packet length too long", "http request")

_NEXT_LINK = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


class RegistryClient:
    """A small OCI distribution client; thread-safe counters, one connection pool."""

    def __init__(
        self,
        *,
        plain_http: bool = False,
        ca_file: Path | None = None,
        insecure_skip_tls_verify: bool = False,
        credentials: CredentialsProvider | None = None,
        max_retries: int = 3,
        max_retry_wait: float = 10.0,
        backoff: float = 0.25,
        timeout: float | None = None,
    ) -> None:
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
        self.plain_http = plain_http
        self.stats = RequestStats()
        self._credentials = credentials
        self._creds_cache: dict[str, RegistryCredentials | None] = {}
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._backoff = backoff
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
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _base(self, host: str) -> str:
        return f"{'http' if self.plain_http else 'https'}://{host}"

    def _count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + n)

    def _creds(self, host: str) -> RegistryCredentials | None:
        if host not in self._creds_cache:
            self._creds_cache[host] = self._credentials(host) if self._credentials else None
        return self._creds_cache[host]

    def _auth_header(self, host: str, scope: str, url: str) -> str | None:
        """The Authorization value for a request to ``url``: none unless ``url`` is on the
        registry's own origin (scheme, host, port), whatever the caller or the registry says."""
        if not same_origin(url, self._base(host)):
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
        self._count("token_requests")
        self._count("requests")
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

    def _send(
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
        attempt = 0
        reauthed = False
        while True:
            hdrs = dict(headers or {})
            auth = self._auth_header(host, scope, url)
            if auth:
                hdrs["Authorization"] = auth
            self._count("requests")
            try:
                req = self._http.build_request(
                    method, url, headers=hdrs, params=params, content=content
                )
                resp = self._http.send(req, stream=stream)
            except httpx.HTTPError as err:
                # a refused connection is retried once: a registry that is down stays down
                limit = (
                    min(1, self._max_retries)
                    if isinstance(err, httpx.ConnectError)
                    else (self._max_retries)
                )
                if attempt < limit and isinstance(err, httpx.TransportError):
                    attempt += 1
                    self._sleep(attempt, None, what)
                    continue
                raise self._transport_error(err, host, what) from None
            if (resp.status_code == 401 and not reauthed
                    and same_origin(str(resp.url), self._base(host))):
                # a challenge counts only from the registry itself, not from a redirect target
                challenge = resp.headers.get("WWW-Authenticate", "")
                parsed = parse_challenge(challenge) or Challenge("")
                creds = self._creds(host)
                if parsed.scheme == "bearer" or (
                    parsed.scheme == "basic" and creds and creds.username
                ):
                    resp.close()
                    self._schemes[host] = (parsed.scheme, parsed.params)
                    self._tokens.pop((host, scope), None)
                    reauthed = True
                    continue
            if resp.status_code in RETRY_STATUSES and attempt < self._max_retries:
                attempt += 1
                wait = _retry_after(resp)
                resp.close()
                self._sleep(attempt, wait, what)
                continue
            if resp.status_code not in ok:
                body = _error_body(resp, stream)
                resp.close()
                raise self._status_error(resp, host, what, body)
            return resp

    def _sleep(self, attempt: int, wait: float | None, what: str) -> None:
        self._count("retries")
        delay = wait if wait is not None else self._backoff * (2 ** (attempt - 1))
        delay = min(max(delay, 0.0), self._max_retry_wait)
        log.debug("retrying %s in %.2fs (attempt %d)", what, delay, attempt + 1)
        time.sleep(delay)

    def _transport_error(self, err: httpx.HTTPError, host: str, what: str) -> NetworkError:
        text = str(err) or type(err).__name__
        if not self.plain_http and any(m in text for m in _PLAIN_HTTP_MARKS):
            return NetworkError(
                f"registry {host} answered in plain HTTP, not TLS ({what})",
                hint="it is a plain-HTTP registry: pass --plain-http",
            )
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
            return NetworkError(
                f"TLS verification failed for registry {host} ({what}): {text}",
                hint="pass --ca-file with the registry's CA, or --insecure-skip-tls-verify",
            )
        if "WRONG_VERSION_NUMBER" in text or isinstance(err, httpx.ConnectError):
            hint = "is the registry up and reachable?"
            if not self.plain_http:
                hint += " for a plain-HTTP registry pass --plain-http"
            return NetworkError(f"cannot connect to registry {host} ({what}): {text}", hint=hint)
        return NetworkError(
            f"connection to registry {host} failed ({what}): {type(err).__name__}: {text}",
            hint="retry later; check the network and any proxy (HTTPS_PROXY/NO_PROXY)",
        )

    def _status_error(
        self, resp: httpx.Response, host: str, what: str, body: bytes
    ) -> Exception:
        code = resp.status_code
        detail = _registry_error(body)
        suffix = f": {detail}" if detail else ""
        url = str(resp.request.url) if resp.request else None
        if code == 401:
            return NetworkError(
                f"registry {host} requires authentication for {what} (401){suffix}",
                url=url,
                status=code,
                hint=f"check the credentials: falcoctl-py registry auth basic {host}",
            )
        if code == 403:
            return NetworkError(
                f"registry {host} denied access to {what} (403){suffix}",
                url=url,
                status=code,
                hint="the credentials lack permission for this repository",
            )
        if code == 404:
            hint = (
                "list the tags with `falcoctl-py artifact info`"
                if what.startswith("manifest")
                else None
            )
            return NotFoundError(f"{what} not found on registry {host}{suffix}", hint=hint)
        if code == 400 and self.plain_http and (
            b"HTTPS" in body[:4096] or resp.http_version == "HTTP/1.0"
        ):  # Go's answer to plain HTTP on a TLS port: "HTTP/1.0 400 ... an HTTPS server"
            return NetworkError(
                f"registry {host} speaks TLS, not plain HTTP ({what})",
                url=url, status=code, hint="drop --plain-http (add --ca-file for a private CA)",
            )
        if code == 429:
            return NetworkError(
                f"registry {host} rate-limited {what} (429) after {self._max_retries} retries",
                url=url,
                status=code,
                hint="wait and retry later, or authenticate to get a higher limit",
                retry_after=_retry_after(resp),
            )
        return NetworkError(
            f"registry {host} answered {code} for {what}{suffix}",
            url=url,
            status=code,
            hint="retry later" if code >= 500 else None,
            retry_after=_retry_after(resp) if code >= 500 else None,
        )

    # -- API --------------------------------------------------------------------------------

    def ping(self, host: str) -> None:
        """Check that ``host`` speaks the OCI distribution API (authenticating if needed)."""
        self._send("GET", f"{self._base(host)}/v2/", host=host, scope="", what="/v2/")

    def list_tags(self, repository: str, *, page_size: int = 1000) -> list[str]:
        """Every tag of a repository, in the registry's order.

        Pagination (``Link: <...>; rel="next"``) is followed only on the registry's own origin
        (scheme, host and port) and for at most ``MAX_TAG_PAGES`` pages: a link elsewhere, a
        loop or too many pages is an error, and credentials never leave the registry."""
        host, path = split_repository(repository)
        what = f"tags of {repository}"
        url: str | None = f"{self._base(host)}/v2/{path}/tags/list"
        params: dict[str, str] | None = {"n": str(page_size)}
        tags: list[str] = []
        seen: set[str] = set()
        while url:
            if len(seen) >= MAX_TAG_PAGES:
                raise NetworkError(
                    f"registry {host} sent more than {MAX_TAG_PAGES} pages of {what}",
                    hint="the registry's pagination looks broken",
                )
            seen.add(url)
            self._count("tag_lists")
            resp = self._send("GET", url, host=host, scope=f"repository:{path}:pull", what=what,
                              params=params, stream=True)
            try:
                body = _small_json(resp, where=f"{what} from {host}")
            finally:
                resp.close()
            page = body.get("tags") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(page, list | None) or any(
                not isinstance(t, str) for t in page or ()
            ):
                raise NetworkError(f"registry {host} sent a malformed tag list for {repository}")
            tags.extend(page or ())
            url = self._next_page(resp, host, what, seen)
            params = None
        return tags

    def _next_page(self, resp: httpx.Response, host: str, what: str, seen: set[str]) -> str | None:
        """The next page's URL from a ``Link`` header, checked to stay on the registry."""
        match = _NEXT_LINK.search(resp.headers.get("Link", ""))
        if match is None:
            return None
        try:
            url = str(urljoin(str(resp.url), match.group(1).strip()))
            same = same_origin(url, self._base(host))
        except (ValueError, httpx.InvalidURL):
            raise NetworkError(
                f"registry {host} sent an invalid next-page link for {what}"
            ) from None
        if not same:
            raise NetworkError(
                f"registry {host} sent a next-page link for {what} to another origin "
                f"({httpx.URL(url).host}); refused",
                hint="pagination is followed only on the registry's own scheme, host and port",
            )
        if url in seen:
            raise NetworkError(f"registry {host} sent a next-page link loop for {what}")
        return url

    def head_manifest(self, repository: str, reference: str) -> Descriptor:
        """The descriptor (media type, digest, size) of a tag or digest, with one HEAD request."""
        host, path = split_repository(repository)
        self._count("manifest_heads")
        resp = self._send(
            "HEAD",
            f"{self._base(host)}/v2/{path}/manifests/{reference}",
            host=host,
            scope=f"repository:{path}:pull",
            what=f"manifest {repository}:{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not digest:
            got = self.get_manifest(repository, reference)
            return Descriptor(got.media_type, got.digest, len(got.data))
        length = resp.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() and len(length) < 20 else 0
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return Descriptor(media_type, digest, size)

    def get_manifest(self, repository: str, reference: str) -> ManifestResult:
        """A manifest or image index by tag or digest; a digest reference is verified."""
        host, path = split_repository(repository)
        self._count("manifest_gets")
        what = f"manifest {repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        resp = self._send(
            "GET",
            f"{self._base(host)}/v2/{path}/manifests/{reference}",
            host=host,
            scope=f"repository:{path}:pull",
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        buf = io.BytesIO()
        try:
            self._read_limited(resp, buf, MAX_MANIFEST_SIZE, what, host)
        finally:
            resp.close()
        data = buf.getvalue()
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise IntegrityError(
                f"{what}: content does not match its digest (got {digest})",
                hint="the registry content is corrupt or was tampered with",
            )
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type in ("", "application/json", "application/octet-stream"):
            try:
                body = loads_json(data, where=what)
            except ValueError:  # not JSON: keep the header's type; the parser reports it
                body = None
            if isinstance(body, dict) and isinstance(body.get("mediaType"), str):
                media_type = body["mediaType"]
        return ManifestResult(data=data, media_type=media_type, digest=digest)

    def referrers(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The OCI 1.1 referrers index of ``digest``, or None when the registry lacks the API."""
        host, path = split_repository(repository)
        self._count("manifest_gets")
        resp = self._send(
            "GET",
            f"{self._base(host)}/v2/{path}/referrers/{digest}",
            host=host,
            scope=f"repository:{path}:pull",
            what=f"referrers of {digest}",
            headers={"Accept": OCI_INDEX},
            ok=(200, 404),
            stream=True,
        )
        try:
            if resp.status_code == 404:
                return None
            if OCI_INDEX not in resp.headers.get("Content-Type", ""):
                return None
            body = _small_json(resp, where=f"referrers of {digest}")
        finally:
            resp.close()
        return body if isinstance(body, dict) else None

    def blob_exists(self, repository: str, digest: str) -> bool:
        host, path = split_repository(repository)
        try:
            self._send(
                "HEAD",
                f"{self._base(host)}/v2/{path}/blobs/{digest}",
                host=host,
                scope=f"repository:{path}:pull,push",
                what=f"blob {digest}",
            )
        except NotFoundError:
            return False
        return True

    def _read_limited(
        self,
        resp: httpx.Response,
        out: IO[bytes],
        limit: int,
        what: str,
        host: str,
        hasher: Any = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise IntegrityError(f"{what} is {length} bytes, over the limit of {limit} "
                                 "(or its descriptor's size)")
        total = 0
        chunks: Iterator[bytes] = resp.iter_raw(CHUNK)
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise IntegrityError(f"{what} is over the limit of {limit} bytes "
                                     "(or its descriptor's size)")
            if hasher is not None:
                hasher.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress(len(chunk))
        return total

    def get_blob(
        self,
        repository: str,
        digest: str,
        out: IO[bytes],
        *,
        max_size: int,
        size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Stream a blob into ``out`` (a seekable file), verifying its sha256; returns its size.

        ``size`` is the descriptor's: reading stops past it, and a blob of another size is an
        error. A connection cut mid-blob is retried from the start; on any error ``out`` may
        hold partial data, which the caller discards.
        """
        host, path = split_repository(repository)
        if not digest.startswith("sha256:"):
            raise IntegrityError(f"blob {digest}: only sha256 digests are supported")
        what = f"blob {digest} of {repository}"
        if size is not None and size > max_size:
            raise IntegrityError(f"{what} is {size} bytes, over the limit of {max_size}")
        limit = max_size if size is None else size
        attempt = 0
        while True:
            self._count("blob_gets")
            resp = self._send(
                "GET",
                f"{self._base(host)}/v2/{path}/blobs/{digest}",
                host=host,
                scope=f"repository:{path}:pull",
                what=what,
                stream=True,
            )
            hasher = hashlib.sha256()
            out.seek(0)
            out.truncate()
            try:
                got_size = self._read_limited(resp, out, limit, what, host, hasher, progress)
            except httpx.TransportError as err:
                resp.close()
                if attempt < self._max_retries:
                    attempt += 1
                    self._sleep(attempt, None, what)
                    continue
                raise NetworkError(
                    f"registry {host} cut the connection during {what}: {type(err).__name__}",
                    hint="retry later; check the network and any proxy",
                ) from None
            finally:
                resp.close()
            self._count("blob_bytes", got_size)
            if size is not None and got_size != size:
                raise IntegrityError(
                    f"{what} is {got_size} bytes, its descriptor says {size}",
                    hint="the registry content is corrupt or was tampered with",
                )
            got = "sha256:" + hasher.hexdigest()
            if got != digest:
                raise IntegrityError(
                    f"{what}: content does not match its digest (got {got})",
                    hint="the registry content is corrupt or was tampered with",
                )
            return got_size

    def get_blob_bytes(
        self, repository: str, digest: str, *, max_size: int = MAX_CONFIG_SIZE,
        size: int | None = None,
    ) -> bytes:
        """A small blob (a config) in memory, verified (and of the descriptor's ``size``)."""
        buf = io.BytesIO()
        self.get_blob(repository, digest, buf, max_size=max_size, size=size)
        return buf.getvalue()

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload a blob unless the registry has it already (monolithic POST + PUT); its digest."""
        host, path = split_repository(repository)
        digest = sha256_digest(data)
        if self.blob_exists(repository, digest):
            return digest
        scope = f"repository:{path}:pull,push"
        what = f"upload of blob {digest} to {repository}"
        resp = self._send(
            "POST",
            f"{self._base(host)}/v2/{path}/blobs/uploads/",
            host=host,
            scope=scope,
            what=what,
            ok=(202,),
        )
        location = resp.headers.get("Location")
        if not location:
            raise NetworkError(f"registry {host} gave no upload location for {what}")
        upload = urljoin(f"{self._base(host)}/", location)
        sep = "&" if "?" in upload else "?"
        self._send(
            "PUT",
            f"{upload}{sep}digest={digest}",
            host=host,
            scope=scope,
            what=what,
            headers={"Content-Type": "application/octet-stream"},
            content=data,
            ok=(201,),
        )
        self._count("blob_pushes")
        self._count("blob_bytes_pushed", len(data))
        return digest

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Put a manifest or image index under a tag or digest; returns its digest."""
        host, path = split_repository(repository)
        self._send(
            "PUT",
            f"{self._base(host)}/v2/{path}/manifests/{reference}",
            host=host,
            scope=f"repository:{path}:pull,push",
            what=f"manifest {repository}:{reference}",
            headers={"Content-Type": media_type},
            content=data,
            ok=(201,),
        )
        return sha256_digest(data)
