"""Fetching indexes from http, https and file URLs, bounded in size; URLs redacted in errors."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx

from falcoctl_py.config import INDEX_BACKENDS, IndexRef
from falcoctl_py.errors import NetworkError, UsageError
from falcoctl_py.http import make_client, redact_text, redact_url
from falcoctl_py.index.model import MAX_INDEX_BYTES, IndexEntry, parse_index
from falcoctl_py.textio import read_regular_file


def backend_for(url: str, backend: str = "") -> str:
    """The backend to use: the one given, else guessed from the URL's scheme."""
    if backend:
        if backend not in INDEX_BACKENDS:
            raise UsageError(
                f"unsupported index backend {backend!r}", hint=f"use {', '.join(INDEX_BACKENDS)}"
            )
        return backend
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in INDEX_BACKENDS:
        return scheme
    if scheme in ("gs", "s3"):
        raise UsageError(
            f"the {scheme} index backend is not supported: {redact_url(url)}",
            hint="serve the index over https or copy it to a file",
        )
    if scheme == "":
        raise UsageError(
            f"cannot tell the backend of {redact_url(url)!r}",
            hint="use an http://, https:// or file:// URL, or pass the backend",
        )
    return "http"  # falcoctl's default for an unknown backend


def file_path(url: str) -> Path:
    """The local path of a ``file://`` URL (or a bare path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.netloc + parts.path))
    return Path(url)


def fetch_index_bytes(url: str, backend: str = "") -> bytes:
    """The raw content of the index at ``url`` (at most ``MAX_INDEX_BYTES``)."""
    kind = backend_for(url, backend)
    if kind == "file":
        return read_regular_file(file_path(url), limit=MAX_INDEX_BYTES, what="index file")
    shown = redact_url(url)  # credentials in the URL never reach a message
    try:
        with make_client() as client, client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise NetworkError(
                    f"cannot fetch index {shown}: HTTP {response.status_code}", url=shown,
                    status=response.status_code, hint="check the index URL",
                )
            chunks = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_INDEX_BYTES:
                    raise NetworkError(
                        f"index {shown} is larger than {MAX_INDEX_BYTES} bytes", url=shown
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as err:
        detail = redact_text(str(err).replace(url, shown))
        raise NetworkError(
            f"cannot fetch index {shown}: {type(err).__name__}: {detail}", url=shown,
            hint="check the URL and your network (proxy variables are honoured)",
        ) from None


def fetch_index(ref: IndexRef) -> tuple[bytes, list[IndexEntry]]:
    """Fetch and parse an index: the raw bytes and the checked entries."""
    data = fetch_index_bytes(ref.url, ref.backend)
    return data, parse_index(data, source=redact_url(ref.url), index_name=ref.name)
