r"""Reading what a registry answers: bodies within limits, and failures as one-line errors.

Every body is untrusted: it is read up to a limit (small replies, manifests, blobs) and parsed
as bounded JSON; a status or transport failure becomes a :class:`NetworkError` (or
:class:`NotFoundError`) naming the registry, what was asked and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urljoin

import httpx

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import FalcoctlPyError, IntegrityError, NetworkError, NotFoundError
from falcoctl_py.http import same_origin
from falcoctl_py.oci.retry import retry_after

MAX_SMALL_REPLY = 1024 * 1024  # token replies, tag-list pages, referrers, error bodies
CHUNK = 1 << 16

# what OpenSSL says when a TLS client hello is answered by plain HTTP
_NEXT_LINK = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")
_PLAIN_HTTP_MARKS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                     "packet length too long", "http request")


def error_body(resp: httpx.Response, stream: bool) -> bytes:
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


def small_json(resp: httpx.Response, *, where: str) -> Any:
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


def read_limited(
    resp: httpx.Response,
    out: IO[bytes],
    limit: int,
    what: str,
    hasher: Any = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy a streamed body into ``out`` (hashing it), failing past ``limit`` bytes; its size."""
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise IntegrityError(f"{what} is {length} bytes, over the limit of {limit} "
                             "(or its descriptor's size)")
    total = 0
    for chunk in resp.iter_raw(CHUNK):
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


def check_blob(what: str, digest: str, got: str, size: int | None, got_size: int) -> None:
    """A blob read must have its descriptor's size (when known) and digest."""
    if size is not None and got_size != size:
        raise IntegrityError(
            f"{what} is {got_size} bytes, its descriptor says {size}",
            hint="the registry content is corrupt or was tampered with",
        )
    if got != digest:
        raise IntegrityError(
            f"{what}: content does not match its digest (got {got})",
            hint="the registry content is corrupt or was tampered with",
        )


def next_page(resp: httpx.Response, base: str, host: str, what: str, seen: set[str]) -> str | None:
    """The next page's URL from a ``Link`` header, checked to stay on the registry (``base``)."""
    match = _NEXT_LINK.search(resp.headers.get("Link", ""))
    if match is None:
        return None
    try:
        url = str(urljoin(str(resp.url), match.group(1).strip()))
        same = same_origin(url, base)
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


def transport_error(
    err: httpx.HTTPError, host: str, what: str, *, plain_http: bool
) -> NetworkError:
    """A failed connection as one line: plain HTTP vs TLS, certificates, refused, or other."""
    text = str(err) or type(err).__name__
    if not plain_http and any(m in text for m in _PLAIN_HTTP_MARKS):
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
        if not plain_http:
            hint += " for a plain-HTTP registry pass --plain-http"
        return NetworkError(f"cannot connect to registry {host} ({what}): {text}", hint=hint)
    return NetworkError(
        f"connection to registry {host} failed ({what}): {type(err).__name__}: {text}",
        hint="retry later; check the network and any proxy (HTTPS_PROXY/NO_PROXY)",
    )


def status_error(
    resp: httpx.Response, host: str, what: str, body: bytes, *, plain_http: bool, retries: int
) -> Exception:
    """An answer whose status was not wanted, as one line with a hint where there is one."""
    code = resp.status_code
    detail = _registry_error(body)
    suffix = f": {detail}" if detail else ""
    url = str(resp.request.url) if resp.request else None
    if code in (401, 403):
        return NetworkError(
            f"registry {host} requires authentication for {what} (401){suffix}" if code == 401
            else f"registry {host} denied access to {what} (403){suffix}",
            url=url,
            status=code,
            hint=f"check the credentials: falcoctl-py registry auth basic {host}" if code == 401
            else "the credentials lack permission for this repository",
        )
    if code == 404:
        hint = "list the tags with `falcoctl-py artifact info`" if what.startswith("manifest") \
            else None
        return NotFoundError(f"{what} not found on registry {host}{suffix}", hint=hint)
    if code == 400 and plain_http and (
        b"HTTPS" in body[:4096] or resp.http_version == "HTTP/1.0"
    ):  # Go's answer to plain HTTP on a TLS port: "HTTP/1.0 400 ... an HTTPS server"
        return NetworkError(
            f"registry {host} speaks TLS, not plain HTTP ({what})",
            url=url, status=code, hint="drop --plain-http (add --ca-file for a private CA)",
        )
    if code == 429:
        return NetworkError(
            f"registry {host} rate-limited {what} (429) after {retries} retries",
            url=url,
            status=code,
            hint="wait and retry later, or authenticate to get a higher limit",
            retry_after=retry_after(resp),
        )
    return NetworkError(
        f"registry {host} answered {code} for {what}{suffix}",
        url=url,
        status=code,
        hint="retry later" if code >= 500 else None,
        retry_after=retry_after(resp) if code >= 500 else None,
    )
