"""Merging the configured indexes, and searching them (falcoctl's name scores and keywords).

Indexes are merged in configuration order: a later index's entry replaces an earlier one with
the same name. An index that cannot be fetched and has no cached copy (an air-gapped host and
the default ``falcosecurity`` index) is a warning naming it: the others are still used, and a
lookup that finds nothing names the unreachable indexes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from falcoctl_py.config import Config
from falcoctl_py.errors import NetworkError, NotFoundError, UsageError
from falcoctl_py.index.cache import load_index_entries
from falcoctl_py.index.model import IndexEntry

log = logging.getLogger(__name__)

DEFAULT_MIN_SCORE = 0.65


def levenshtein(a: str, b: str) -> int:
    """Edit distance between ``a`` and ``b``, case-insensitive."""
    a, b = a.lower(), b.lower()
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def score(name: str, keyword: str) -> float:
    """falcoctl's similarity: 1 - distance / length of the longer string (1.0 is equal)."""
    longer = max(len(name), len(keyword))
    if longer == 0:
        return 1.0
    return (longer - levenshtein(name, keyword)) / longer


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A search result: the entry and its best name score."""

    entry: IndexEntry
    score: float


@dataclass(frozen=True, slots=True)
class Unreachable:
    """A configured index that could not be fetched and has no cached copy."""

    name: str
    reason: str


class MergedIndex:
    """The entries of every configured index; a later index wins on a name clash."""

    def __init__(self, indexes: Sequence[tuple[str, Sequence[IndexEntry]]] = ()) -> None:
        self._entries: dict[str, IndexEntry] = {}
        self.index_names: list[str] = []
        self.unreachable: list[Unreachable] = []
        for name, entries in indexes:
            self.add(name, entries)

    def add(self, index_name: str, entries: Iterable[IndexEntry]) -> None:
        """Merge one index on top of what is there."""
        self.index_names.append(index_name)
        for entry in entries:
            if entry.index != index_name:
                entry = replace(entry, index=index_name)
            self._entries[entry.name] = entry

    def get(self, name: str) -> IndexEntry | None:
        """The entry called ``name``, or None."""
        return self._entries.get(name)

    def missing_hint(self) -> str:
        """Why a name may be missing: the unreachable indexes, named ('' when none)."""
        if not self.unreachable:
            return ""
        names = ", ".join(u.name for u in self.unreachable)
        return f"index {names} could not be fetched and has no cached copy"

    def entries(self, *, type: str | None = None, index: str | None = None) -> list[IndexEntry]:
        """All entries in merge order, optionally of one type or from one index."""
        return [
            e for e in self._entries.values()
            if (type is None or e.type == type) and (index is None or e.index == index)
        ]

    def search(
        self, keywords: Sequence[str], *, min_score: float = DEFAULT_MIN_SCORE,
        type: str | None = None, index: str | None = None,
    ) -> list[SearchHit]:
        """Entries whose name scores at least ``min_score`` against a keyword, or whose
        keywords contain one; best score first, then by name."""
        hits = []
        for entry in self.entries(type=type, index=index):
            joined = " ".join(entry.keywords)
            best = max((score(entry.name, k) for k in keywords), default=0.0)
            if best >= min_score or any(k in joined for k in keywords):
                hits.append(SearchHit(entry=entry, score=round(best, 4)))
        hits.sort(key=lambda h: (-h.score, h.entry.name))
        return hits

    def __len__(self) -> int:
        return len(self._entries)


def load_merged_index(config: Config, *, only: str | None = None) -> MergedIndex:
    """The merged index of the configured indexes, from the cache or fetched (and cached).

    An index that cannot be fetched and has no cached copy is logged as a warning and recorded
    in ``unreachable``; the others are still merged."""
    merged = MergedIndex()
    for ref in config.indexes:
        if only is not None and ref.name != only:
            continue
        try:
            merged.add(ref.name, load_index_entries(ref))
        except (NetworkError, NotFoundError) as err:
            log.warning("index %s is unreachable and has no cached copy: %s", ref.name,
                        err.one_line())
            merged.unreachable.append(Unreachable(ref.name, err.one_line()))
    return merged


def _check_index(config: Config, index: str | None) -> None:
    if index is not None and all(ref.name != index for ref in config.indexes):
        raise NotFoundError(f"no configured index named {index!r}",
                            hint="see `index list`, or add it with `index add`")


def _none_reachable(merged: MergedIndex) -> None:
    if merged.unreachable and not merged.index_names:
        raise NetworkError(f"no index could be read: {merged.missing_hint()}",
                           hint=merged.unreachable[0].reason)


def search_artifacts(
    *, config: Config, keywords: Sequence[str], min_score: float = DEFAULT_MIN_SCORE,
    type: str | None = None, index: str | None = None,
) -> list[SearchHit]:
    """``artifact search``: the merged index (or one index) searched by keywords."""
    if not 0.0 < min_score <= 1.0:
        raise UsageError(f"--min-score must be in (0, 1], not {min_score}")
    if not keywords:
        raise UsageError("give at least one keyword")
    _check_index(config, index)
    merged = load_merged_index(config, only=index)
    _none_reachable(merged)
    return merged.search(keywords, min_score=min_score, type=type)


def list_artifacts(
    *, config: Config, type: str | None = None, index: str | None = None
) -> list[IndexEntry]:
    """``artifact list``: the merged index's entries, optionally of one type or index."""
    _check_index(config, index)
    merged = load_merged_index(config, only=index)
    _none_reachable(merged)
    return merged.entries(type=type)
