"""Where signatures live in a registry: the protocol the signing code needs, over the OCI client.

``SignatureStore`` reads and writes manifests and blobs and asks for referrers (``GET
/v2/<repo>/referrers/<digest>``; a 404 means the registry has no referrers API and the
``sha256-<hex>`` tag schema is used instead). Repositories are ``host/path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from falcoctl_py.errors import NotFoundError


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
        result = self.client.referrers(repository, digest)
        return None if result is None else dict(result)

    def push_blob(self, repository: str, data: bytes) -> str:
        return str(self.client.push_blob(repository, data))

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        return str(self.client.push_manifest(repository, reference, data, media_type))
