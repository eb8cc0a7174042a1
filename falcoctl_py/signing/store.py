"""Where signatures live in a registry: the protocol the signing code needs, over the OCI client.

``SignatureStore`` reads and writes manifests and blobs and asks for referrers (``GET
/v2/<repo>/referrers/<digest>``; a 404 means the registry has no referrers API and the
``sha256-<hex>`` tag schema is used instead). Repositories are ``host/path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import NetworkError, NotFoundError


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    media_type: str
    digest: str


class RegistryReader(Protocol):
    def get_manifest(self, repository: str, reference: str) -> Fetched | None: ...
    def get_blob(self, repository: str, digest: str) -> bytes: ...
    def referrers(self, repository: str, digest: str) -> dict[str, Any] | None: ...


class RegistryWriter(RegistryReader, Protocol):
    def push_blob(self, repository: str, data: bytes) -> str: ...
    def push_manifest(
        self, repository: str, reference: str, data: bytes, media_type: str
    ) -> str: ...


MAX_SIGNATURE_BLOB = 1 << 20


class SignatureStore:
    """``RegistryReader``/``RegistryWriter`` over :class:`falcoctl_py.oci.RegistryClient`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_manifest(self, repository: str, reference: str) -> Fetched | None:
        """A manifest by tag or digest, or None when there is none."""
        try:
            got = self.client.get_manifest(repository, reference)
        except NotFoundError:
            return None
        return Fetched(got.data, got.media_type, got.digest)

    def get_blob(self, repository: str, digest: str) -> bytes:
        return bytes(self.client.get_blob_bytes(repository, digest, max_size=MAX_SIGNATURE_BLOB))

    def referrers(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The referrers index of ``digest`` from the referrers API; None without that API."""
        if hasattr(self.client, "referrers"):
            result = self.client.referrers(repository, digest)
            return None if result is None else dict(result)
        host, _, path = repository.partition("/")
        try:
            resp = self.client._send(  # the OCI client has no public referrers call yet
                "GET",
                f"{self.client._base(host)}/v2/{path}/referrers/{digest}",
                host=host,
                scope=f"repository:{path}:pull",
                what=f"referrers of {digest}",
                headers={"Accept": "application/vnd.oci.image.index.v1+json"},
                ok=(200, 404),
            )
        except NetworkError as err:
            if err.status in (400, 405, 406, 501):  # no referrers API here: use the tag schema
                return None
            raise
        try:
            if resp.status_code == 404:
                return None
            content_type = resp.headers.get("Content-Type", "")
            if "application/vnd.oci.image.index.v1+json" not in content_type:
                return None
            doc = loads_json(resp.content, where="the referrers index")
        except ValueError:
            return None
        finally:
            resp.close()
        return doc if isinstance(doc, dict) else None

    def push_blob(self, repository: str, data: bytes) -> str:
        return str(self.client.push_blob(repository, data))

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        return str(self.client.push_manifest(repository, reference, data, media_type))
