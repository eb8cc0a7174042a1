"""The OCI distribution client over httpx: auth (Basic, Bearer with token cache), retries, counters.

Every method takes ``repository`` as ``host[:port]/path`` so one client serves several registries.
Nothing here prints; errors are :class:`FalcoctlPyError` subclasses with one-line messages that
never carry credentials.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import IntegrityError, NetworkError, NotFoundError, UsageError
from falcoctl_py.oci.media import MANIFEST_ACCEPT, OCI_INDEX, Descriptor
from falcoctl_py.oci.replies import check_blob, next_page, read_limited, small_json
from falcoctl_py.oci.retry import RetryPolicy
from falcoctl_py.oci.transport import (
    Challenge,
    CredentialsProvider,
    RegistryCredentials,
    RequestStats,
    Session,
    parse_challenge,
)

__all__ = [
    "Challenge",
    "CredentialsProvider",
    "ManifestResult",
    "RegistryClient",
    "RegistryCredentials",
    "RequestStats",
    "parse_challenge",
    "sha256_digest",
    "split_repository",
]

log = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 4 * 1024 * 1024
MAX_TAG_PAGES = 100

@dataclass(frozen=True, slots=True)
class ManifestResult:
    """A manifest or image index as fetched: raw bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str


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


class RegistryClient:
    """A small OCI distribution client: tags, manifests, blobs, push; one :class:`Session`."""

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
        self._session = Session(
            plain_http=plain_http, ca_file=ca_file,
            insecure_skip_tls_verify=insecure_skip_tls_verify, credentials=credentials,
            retry=RetryPolicy(max_retries, max_retry_wait, backoff), timeout=timeout,
        )

    @property
    def plain_http(self) -> bool:
        """True when registries are asked over plain HTTP."""
        return self._session.plain_http

    @property
    def stats(self) -> RequestStats:
        """The counters of what this client asked for."""
        return self._session.stats

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


    def _api(
        self,
        method: str,
        repository: str,
        endpoint: str,
        push: bool = False,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """``METHOD /v2/<path>/<endpoint>`` on the repository's registry, with a pull scope (or
        pull,push)."""
        host, path = split_repository(repository)
        return self._session.send(
            method, f"{self._session.base(host)}/v2/{path}/{endpoint}", host=host,
            scope=f"repository:{path}:{'pull,push' if push else 'pull'}", what=what,
            headers=headers, content=content, stream=stream, ok=ok,
        )

    def ping(self, host: str) -> None:
        """Check that ``host`` speaks the OCI distribution API (authenticating if needed)."""
        self._session.send("GET", f"{self._session.base(host)}/v2/", host=host, scope="",
                           what="/v2/")

    def list_tags(self, repository: str, *, page_size: int = 1000) -> list[str]:
        """Every tag of a repository, in the registry's order.

        Pagination (``Link: <...>; rel="next"``) is followed only on the registry's own origin
        (scheme, host and port) and for at most ``MAX_TAG_PAGES`` pages: a link elsewhere, a
        loop or too many pages is an error, and credentials never leave the registry."""
        host, path = split_repository(repository)
        what = f"tags of {repository}"
        url: str | None = f"{self._session.base(host)}/v2/{path}/tags/list"
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
            self._session.count("tag_lists")
            resp = self._session.send("GET", url, host=host, scope=f"repository:{path}:pull",
                                      what=what, params=params, stream=True)
            try:
                body = small_json(resp, where=f"{what} from {host}")
            finally:
                resp.close()
            page = body.get("tags") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(page, list | None) or any(
                not isinstance(t, str) for t in page or ()
            ):
                raise NetworkError(f"registry {host} sent a malformed tag list for {repository}")
            tags.extend(page or ())
            url = next_page(resp, self._session.base(host), host, what, seen)
            params = None
        return tags

    def head_manifest(self, repository: str, reference: str) -> Descriptor:
        """The descriptor (media type, digest, size) of a tag or digest, with one HEAD request."""
        split_repository(repository)  # a bad reference fails before anything is counted
        self._session.count("manifest_heads")
        resp = self._api(
            "HEAD", repository, f"manifests/{reference}",
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
        split_repository(repository)  # a bad reference fails before anything is counted
        self._session.count("manifest_gets")
        what = f"manifest {repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        resp = self._api(
            "GET", repository, f"manifests/{reference}",
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        buf = io.BytesIO()
        try:
            read_limited(resp, buf, MAX_MANIFEST_SIZE, what)
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
        split_repository(repository)  # a bad reference fails before anything is counted
        self._session.count("manifest_gets")
        try:
            resp = self._api(
                "GET", repository, f"referrers/{digest}",
                what=f"referrers of {digest}",
                headers={"Accept": OCI_INDEX},
                ok=(200, 404),
                stream=True,
            )
        except NetworkError as err:
            if err.status in (400, 405, 406, 501):  # no referrers API here: use the tag schema
                return None
            raise
        try:
            if resp.status_code == 404:
                return None
            if OCI_INDEX not in resp.headers.get("Content-Type", ""):
                return None
            body = small_json(resp, where=f"referrers of {digest}")
        finally:
            resp.close()
        return body if isinstance(body, dict) else None

    def blob_exists(self, repository: str, digest: str) -> bool:
        try:
            self._api(
                "HEAD", repository, f"blobs/{digest}", push=True,
                what=f"blob {digest}",
            )
        except NotFoundError:
            return False
        return True

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
        host, _ = split_repository(repository)
        if not digest.startswith("sha256:"):
            raise IntegrityError(f"blob {digest}: only sha256 digests are supported")
        what = f"blob {digest} of {repository}"
        if size is not None and size > max_size:
            raise IntegrityError(f"{what} is {size} bytes, over the limit of {max_size}")
        limit = max_size if size is None else size
        tries = self._session.attempts(what)
        while True:
            self._session.count("blob_gets")
            resp = self._api(
                "GET", repository, f"blobs/{digest}",
                what=what,
                stream=True,
            )
            hasher = hashlib.sha256()
            out.seek(0)
            out.truncate()
            try:
                got_size = read_limited(resp, out, limit, what, hasher, progress)
            except httpx.TransportError as err:
                resp.close()
                if tries.left():
                    tries.pause()
                    continue
                raise NetworkError(
                    f"registry {host} cut the connection during {what}: {type(err).__name__}",
                    hint="retry later; check the network and any proxy",
                ) from None
            finally:
                resp.close()
            self._session.count("blob_bytes", got_size)
            check_blob(what, digest, "sha256:" + hasher.hexdigest(), size, got_size)
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
        resp = self._session.send(
            "POST",
            f"{self._session.base(host)}/v2/{path}/blobs/uploads/",
            host=host,
            scope=scope,
            what=what,
            ok=(202,),
        )
        location = resp.headers.get("Location")
        if not location:
            raise NetworkError(f"registry {host} gave no upload location for {what}")
        upload = urljoin(f"{self._session.base(host)}/", location)
        sep = "&" if "?" in upload else "?"
        self._session.send(
            "PUT",
            f"{upload}{sep}digest={digest}",
            host=host,
            scope=scope,
            what=what,
            headers={"Content-Type": "application/octet-stream"},
            content=data,
            ok=(201,),
        )
        self._session.count("blob_pushes")
        self._session.count("blob_bytes_pushed", len(data))
        return digest

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Put a manifest or image index under a tag or digest; returns its digest."""
        self._api(
            "PUT", repository, f"manifests/{reference}", push=True,
            what=f"manifest {repository}:{reference}",
            headers={"Content-Type": media_type},
            content=data,
            ok=(201,),
        )
        return sha256_digest(data)
