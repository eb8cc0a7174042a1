"""falcoctl's local cache of indexes, and ``index add|list|remove|update``.

The cache is falcoctl's: ``~/.config/falcoctl/indexes.yaml`` lists the fetched indexes with their
URL, backend and timestamps (0600: a URL may hold credentials), and
``~/.config/falcoctl/indexes/<name>.yaml`` holds each copy. An index is always parsed and checked
before anything is written, so a malformed index leaves the cache and the config file as they
were. Cached copies are parsed with the same bounds as fetched ones, so a poisoned copy costs
nothing and is fetched again. URLs are shown with their credentials redacted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from falcoctl_py.bounded import safe_load_yaml
from falcoctl_py.config import Config, IndexRef, read_file_indexes, save_indexes, user_config_dir
from falcoctl_py.errors import (
    ConfigError,
    FalcoctlPyError,
    NetworkError,
    NotFoundError,
    UsageError,
)
from falcoctl_py.http import redact_url
from falcoctl_py.index.fetch import backend_for, fetch_index
from falcoctl_py.index.model import MAX_INDEX_BYTES, IndexEntry, parse_index
from falcoctl_py.textio import dump_yaml, read_regular_file, write_atomic

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_CACHE_RECORDS_BYTES = 4 * 1024 * 1024


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
    """falcoctl's per-user directory, where the cache lives."""
    return user_config_dir()


def cache_config_path() -> Path:
    """``indexes.yaml``: the records of the cached indexes."""
    return cache_dir() / "indexes.yaml"


def cached_index_path(name: str) -> Path:
    """The cached copy of index ``name``."""
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
# the cache


def read_cache_records() -> list[CacheRecord]:
    """The records of ``indexes.yaml`` (empty when there is none)."""
    path = cache_config_path()
    hint = "remove the file and run index add again"
    try:
        data = safe_load_yaml(path.read_bytes(), where=str(path))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise ConfigError(f"cannot read the index cache: {err.strerror}", path=str(path),
                          hint=hint) from None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"the index cache is not valid YAML: {problem}", path=str(path),
                          hint=hint) from None
    if data is None:
        return []
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(configs, list | None):
        raise ConfigError("the index cache must be a mapping with a configs list",
                          path=str(path), hint=hint)
    records = []
    for item in configs or []:
        if isinstance(item, dict) and item.get("name"):
            records.append(CacheRecord(
                name=str(item["name"]), url=str(item.get("url") or ""),
                backend=str(item.get("backend") or ""),
                added_timestamp=str(item.get("added_timestamp") or ""),
                updated_timestamp=str(item.get("updated_timestamp") or ""),
            ))
    return records


def write_cache_records(records: list[CacheRecord]) -> None:
    """Rewrite ``indexes.yaml`` atomically, mode 0600 (its URLs may hold credentials)."""
    data = {"configs": [
        {"added_timestamp": r.added_timestamp, "backend": r.backend, "name": r.name,
         "updated_timestamp": r.updated_timestamp, "url": r.url}
        for r in records
    ]}
    path = cache_config_path()
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, dump_yaml(data).encode(), mode=0o600)


def store_in_cache(ref: IndexRef, data: bytes) -> CacheRecord:
    """Write the index copy, then its record (added time kept, updated time bumped)."""
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
            data = read_regular_file(path, limit=MAX_INDEX_BYTES, what="cached index")
            return parse_index(data, source=str(path), index_name=ref.name)
        except FalcoctlPyError as err:  # a damaged or poisoned copy: fetch it again below
            log.warning("cached index %s is unreadable (%s); fetching it again", path,
                        err.one_line())
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
    return IndexInfo(name, redact_url(url), ref.backend, record.added_timestamp,
                     record.updated_timestamp, configured=True, cached=True,
                     entries=len(entries),
                     previous_url=redact_url(previous.url)
                     if previous and previous.url != url else "")


def list_indexes(*, config: Config) -> list[IndexInfo]:
    """Configured indexes (file and environment) and cached ones, configured first; URLs are
    shown with any credentials redacted."""
    records = {r.name: r for r in read_cache_records()}
    out = []
    for ref in config.indexes:
        rec = records.pop(ref.name, None)
        out.append(IndexInfo(
            ref.name, redact_url(ref.url), ref.backend,
            rec.added_timestamp if rec else "", rec.updated_timestamp if rec else "",
            configured=True, cached=rec is not None and rec.url == ref.url,
        ))
    for rec in records.values():
        out.append(IndexInfo(rec.name, redact_url(rec.url), rec.backend, rec.added_timestamp,
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

    Every index is fetched and checked before any cached copy is replaced. An unreachable
    index is a warning naming it (its cached copy stays); only when none could be fetched is it
    an error. A malformed index is an error and nothing is replaced."""
    refs = {r.name: IndexRef(r.name, r.url, r.backend) for r in read_cache_records()}
    refs.update({i.name: i for i in config.indexes})
    wanted = names or list(refs)
    unknown = [n for n in wanted if n not in refs]
    if unknown:
        raise NotFoundError(
            f"no index named {', '.join(map(repr, unknown))}", hint="add it with `index add`"
        )
    fetched: list[tuple[IndexRef, bytes, list[IndexEntry]]] = []
    failed: list[str] = []
    for name in wanted:
        try:
            fetched.append((refs[name], *fetch_index(refs[name])))
        except (NetworkError, NotFoundError) as err:
            log.warning("index %s could not be updated: %s", name, err.one_line())
            failed.append(name)
    if failed and not fetched:
        raise NetworkError(f"no index could be updated (unreachable: {', '.join(failed)})",
                           hint="check the network; the cached copies are kept")
    out = []
    for ref, data, entries in fetched:
        record = store_in_cache(ref, data)
        out.append(IndexInfo(ref.name, redact_url(ref.url), ref.backend, record.added_timestamp,
                             record.updated_timestamp, configured=ref in config.indexes,
                             cached=True, entries=len(entries)))
    return out
