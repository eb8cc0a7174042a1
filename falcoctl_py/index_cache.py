"""Fetching indexes (http, https, file) and falcoctl's local cache of them.

The cache is falcoctl's: ``~/.config/falcoctl/indexes.yaml`` lists the fetched indexes with their
URL, backend and timestamps, and ``~/.config/falcoctl/indexes/<name>.yaml`` holds each copy. An
index is always parsed and checked before anything is written, so a malformed index leaves the
cache and the config file as they were.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from falcoctl_py.config import (
    INDEX_BACKENDS,
    Config,
    IndexRef,
    read_file_indexes,
    save_indexes,
    user_config_dir,
)
from falcoctl_py.errors import ConfigError, LocatedError, NetworkError, NotFoundError, UsageError
from falcoctl_py.indexes import IndexEntry, parse_index

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_INDEX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """One item of ``indexes.yaml``: an index fetched into the cache."""

    name: str
    url: str
    backend: str = ""
    added_timestamp: str = ""
    updated_timestamp: str = ""


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """An index as ``index list`` shows it."""

    name: str
    url: str
    backend: str
    added: str
    updated: str
    configured: bool
    cached: bool
    entries: int | None = None
    previous_url: str = ""


def cache_dir() -> Path:
    return user_config_dir()


def cache_config_path() -> Path:
    return cache_dir() / "indexes.yaml"


def cached_index_path(name: str) -> Path:
    return cache_dir() / "indexes" / f"{check_name(name)}.yaml"


def check_name(name: str) -> str:
    """An index name usable as a file name, or a UsageError."""
    if not _NAME.match(name):
        raise UsageError(
            f"invalid index name {name!r}",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def _now() -> str:
    return dt.datetime.now().strftime(TIMESTAMP_FORMAT)


# ---------------------------------------------------------------------------------------------
# fetching


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
            f"the {scheme} index backend is not supported: {url}",
            hint="serve the index over https or copy it to a file",
        )
    if scheme == "":
        raise UsageError(
            f"cannot tell the backend of {url!r}",
            hint="use an http://, https:// or file:// URL, or pass the backend",
        )
    return "http"  # falcoctl's default for an unknown backend


def _file_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.netloc + parts.path))
    return Path(url)


def fetch_index_bytes(url: str, backend: str = "") -> bytes:
    """The raw content of the index at ``url``."""
    kind = backend_for(url, backend)
    if kind == "file":
        path = _file_path(url)
        try:
            return path.read_bytes()
        except OSError as err:
            raise NotFoundError(
                f"cannot read index file {path}: {err.strerror}", hint="check the path"
            ) from err
    import httpx

    from falcoctl_py.http import make_client, redact_url

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
        detail = str(err).replace(url, shown)
        raise NetworkError(
            f"cannot fetch index {shown}: {type(err).__name__}: {detail}", url=shown,
            hint="check the URL and your network (proxy variables are honoured)",
        ) from None


def fetch_index(ref: IndexRef) -> tuple[bytes, list[IndexEntry]]:
    """Fetch and parse an index: the raw bytes and the checked entries."""
    data = fetch_index_bytes(ref.url, ref.backend)
    from falcoctl_py.http import redact_url

    return data, parse_index(data, source=redact_url(ref.url), index_name=ref.name)


# ---------------------------------------------------------------------------------------------
# the cache


def read_cache_records() -> list[CacheRecord]:
    """The records of ``indexes.yaml`` (empty when there is none)."""
    import yaml

    path = cache_config_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the index cache: {err}", path=str(path),
                          hint="remove the file and run index add again") from err
    records = []
    for item in (data or {}).get("configs") or []:
        if isinstance(item, dict) and item.get("name"):
            records.append(CacheRecord(
                name=str(item["name"]), url=str(item.get("url") or ""),
                backend=str(item.get("backend") or ""),
                added_timestamp=str(item.get("added_timestamp") or ""),
                updated_timestamp=str(item.get("updated_timestamp") or ""),
            ))
    return records


def write_cache_records(records: list[CacheRecord]) -> None:
    """Rewrite ``indexes.yaml`` atomically."""
    from falcoctl_py.textio import dump_yaml, write_atomic

    data = {"configs": [
        {"added_timestamp": r.added_timestamp, "backend": r.backend, "name": r.name,
         "updated_timestamp": r.updated_timestamp, "url": r.url}
        for r in records
    ]}
    path = cache_config_path()
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, dump_yaml(data).encode(), mode=0o644)


def store_in_cache(ref: IndexRef, data: bytes) -> CacheRecord:
    """Write the index copy, then its record (added time kept, updated time bumped)."""
    from falcoctl_py.textio import write_atomic

    path = cached_index_path(ref.name)
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o644)
    records = read_cache_records()
    now = _now()
    old = next((r for r in records if r.name == ref.name), None)
    record = CacheRecord(ref.name, ref.url, ref.backend,
                         old.added_timestamp if old and old.url == ref.url else now, now)
    records = [record if r.name == ref.name else r for r in records]
    if old is None:
        records.append(record)
    write_cache_records(records)
    return record


def load_index_entries(ref: IndexRef) -> list[IndexEntry]:
    """The entries of a configured index: the cached copy when it is for the same URL,
    otherwise fetched (and cached when the cache is writable)."""
    check_name(ref.name)
    record = next((r for r in read_cache_records() if r.name == ref.name), None)
    path = cached_index_path(ref.name)
    if record is not None and record.url == ref.url and path.exists():
        try:
            return parse_index(path.read_bytes(), source=str(path), index_name=ref.name)
        except LocatedError as err:  # a damaged copy: fetch it again below
            log.warning("cached index %s is unreadable (%s); fetching it again", path, err)
    data, entries = fetch_index(ref)
    with contextlib.suppress(OSError):
        store_in_cache(ref, data)
    return entries


# ---------------------------------------------------------------------------------------------
# index add / list / remove / update


def add_index(*, config_path: Path, name: str, url: str, backend: str = "") -> IndexInfo:
    """Fetch, check and cache an index, and add it to the config file (URL updated when the
    name exists)."""
    check_name(name)
    ref = IndexRef(name, url, backend_for(url, backend))
    data, entries = fetch_index(ref)
    record = store_in_cache(ref, data)
    configured = read_file_indexes(config_path)
    previous = next((i for i in configured if i.name == name), None)
    if previous is not None:
        configured = [ref if i.name == name else i for i in configured]
    else:
        configured.append(ref)
    save_indexes(config_path, configured)
    return IndexInfo(name, url, ref.backend, record.added_timestamp, record.updated_timestamp,
                     configured=True, cached=True, entries=len(entries),
                     previous_url=previous.url if previous and previous.url != url else "")


def list_indexes(*, config: Config) -> list[IndexInfo]:
    """Configured indexes (file and environment) and cached ones, configured first."""
    records = {r.name: r for r in read_cache_records()}
    out = []
    for ref in config.indexes:
        rec = records.pop(ref.name, None)
        out.append(IndexInfo(
            ref.name, ref.url, ref.backend,
            rec.added_timestamp if rec else "", rec.updated_timestamp if rec else "",
            configured=True, cached=rec is not None and rec.url == ref.url,
        ))
    for rec in records.values():
        out.append(IndexInfo(rec.name, rec.url, rec.backend, rec.added_timestamp,
                             rec.updated_timestamp, configured=False, cached=True))
    return out


def remove_indexes(*, config_path: Path, names: list[str]) -> list[str]:
    """Remove indexes from the cache and the config file; unknown names fail first."""
    configured = read_file_indexes(config_path)
    records = read_cache_records()
    known = {i.name for i in configured} | {r.name for r in records}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise NotFoundError(
            f"no index named {', '.join(map(repr, unknown))}", hint="see `index list`"
        )
    gone = set(names)
    save_indexes(config_path, [i for i in configured if i.name not in gone])
    write_cache_records([r for r in records if r.name not in gone])
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            cached_index_path(name).unlink()
    return names


def update_indexes(*, config: Config, names: list[str]) -> list[IndexInfo]:
    """Fetch the named indexes again (all configured and cached ones when none is named).

    Every index is fetched and checked before any cached copy is replaced."""
    refs = {r.name: IndexRef(r.name, r.url, r.backend) for r in read_cache_records()}
    refs.update({i.name: i for i in config.indexes})
    wanted = names or list(refs)
    unknown = [n for n in wanted if n not in refs]
    if unknown:
        raise NotFoundError(
            f"no index named {', '.join(map(repr, unknown))}", hint="add it with `index add`"
        )
    fetched = [(refs[n], *fetch_index(refs[n])) for n in wanted]
    out = []
    for ref, data, entries in fetched:
        record = store_in_cache(ref, data)
        out.append(IndexInfo(ref.name, ref.url, ref.backend, record.added_timestamp,
                             record.updated_timestamp, configured=ref in config.indexes,
                             cached=True, entries=len(entries)))
    return out
