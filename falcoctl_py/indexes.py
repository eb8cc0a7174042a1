"""Artifact indexes: the ``index.yaml`` format, merging configured indexes, and search.

An index is a YAML list of entries (falcoctl's format); each entry names an artifact, its type
and where it lives (``registry``/``repository``), plus optional metadata and cosign signature
data. Indexes are merged in configuration order: a later index's entry replaces an earlier one
with the same name. Fetching and the local cache live in :mod:`falcoctl_py.index_cache`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from falcoctl_py.errors import LocatedError

if TYPE_CHECKING:
    from falcoctl_py.config import Config

DEFAULT_MIN_SCORE = 0.65


@dataclass(frozen=True, slots=True)
class Maintainer:
    """A maintainer of an artifact."""

    name: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class CosignSignature:
    """Cosign verification data of an entry (the cosign CLI's flags, by name)."""

    certificate_oidc_issuer: str = ""
    certificate_oidc_issuer_regexp: str = ""
    certificate_identity: str = ""
    certificate_identity_regexp: str = ""
    certificate_github_workflow: str = ""
    key: str = ""
    ignore_tlog: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    """``signature:`` of an entry."""

    cosign: CosignSignature | None = None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One artifact of an index; ``index`` is the name of the index it came from."""

    name: str
    type: str
    registry: str
    repository: str
    description: str = ""
    home: str = ""
    keywords: list[str] = field(default_factory=list)
    license: str = ""
    maintainers: list[Maintainer] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    signature: Signature | None = None
    index: str = ""

    @property
    def ref(self) -> str:
        """``registry/repository`` without a tag."""
        return f"{self.registry}/{self.repository}"

    def to_yaml_data(self) -> dict[str, Any]:
        """The entry as falcoctl writes it in an index.yaml."""
        data: dict[str, Any] = {
            "name": self.name, "type": self.type, "registry": self.registry,
            "repository": self.repository,
        }
        if self.signature is not None and self.signature.cosign is not None:
            c = self.signature.cosign
            data["signature"] = {"cosign": {
                "certificate-oidc-issuer": c.certificate_oidc_issuer,
                "certificate-oidc-issuer-regexp": c.certificate_oidc_issuer_regexp,
                "certificate-identity": c.certificate_identity,
                "certificate-identity-regexp": c.certificate_identity_regexp,
                "certificate-github-workflow": c.certificate_github_workflow,
                "key": c.key,
                "ignore-tlog": c.ignore_tlog,
            }}
        data.update({
            "description": self.description, "home": self.home, "keywords": list(self.keywords),
            "license": self.license,
            "maintainers": [{"email": m.email, "name": m.name} for m in self.maintainers],
            "sources": list(self.sources),
        })
        return data


# ---------------------------------------------------------------------------------------------
# parsing


def parse_index(data: bytes | str, *, source: str, index_name: str = "") -> list[IndexEntry]:
    """Parse an index.yaml; any problem raises ``LocatedError`` naming ``source`` and the line."""
    import yaml

    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml when available
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.SequenceNode):
            raise LocatedError(
                "an index must be a YAML list of entries", path=source,
                line=root.start_mark.line + 1, hint="check the URL points at an index.yaml",
            )
        entries: list[IndexEntry] = []
        seen: dict[str, int] = {}
        for node in root.value:
            line = node.start_mark.line + 1
            if not isinstance(node, yaml.MappingNode):
                raise LocatedError("an index entry must be a mapping", path=source, line=line)
            raw = loader.construct_mapping(node, deep=True)
            entry = _entry(raw, source=source, line=line, index_name=index_name)
            if entry.name in seen:
                raise LocatedError(
                    f"duplicate entry {entry.name!r} (first at line {seen[entry.name]})",
                    path=source, line=line,
                )
            seen[entry.name] = line
            entries.append(entry)
        return entries
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise LocatedError(
            f"invalid YAML: {problem}", path=source,
            line=mark.line + 1 if mark is not None else None,
            hint="the index is malformed; fix it or ask its maintainer",
        ) from err
    finally:
        loader.dispose()


def _text(raw: dict[Any, Any], key: str, *, source: str, line: int, required: bool = False) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise LocatedError(f"index entry has no {key!r}", path=source, line=line)
        return ""
    if isinstance(value, dict | list):
        raise LocatedError(f"index entry field {key!r} must be a string", path=source, line=line)
    return str(value)


def _texts(raw: dict[Any, Any], key: str, *, source: str, line: int) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
        raise LocatedError(
            f"index entry field {key!r} must be a list of strings", path=source, line=line
        )
    return [str(v) for v in value]


def _entry(raw: dict[Any, Any], *, source: str, line: int, index_name: str) -> IndexEntry:
    maintainers = []
    for m in raw.get("maintainers") or []:
        if not isinstance(m, dict):
            raise LocatedError(
                "index entry maintainers must be mappings with name and email",
                path=source, line=line,
            )
        maintainers.append(Maintainer(name=str(m.get("name") or ""),
                                      email=str(m.get("email") or "")))
    signature = None
    sig = raw.get("signature")
    if sig is not None:
        if not isinstance(sig, dict) or not isinstance(sig.get("cosign") or {}, dict):
            raise LocatedError("index entry signature must be a mapping", path=source, line=line)
        cosign = sig.get("cosign")
        signature = Signature(cosign=None if cosign is None else CosignSignature(
            certificate_oidc_issuer=str(cosign.get("certificate-oidc-issuer") or ""),
            certificate_oidc_issuer_regexp=str(cosign.get("certificate-oidc-issuer-regexp") or ""),
            certificate_identity=str(cosign.get("certificate-identity") or ""),
            certificate_identity_regexp=str(cosign.get("certificate-identity-regexp") or ""),
            certificate_github_workflow=str(cosign.get("certificate-github-workflow") or ""),
            key=str(cosign.get("key") or ""),
            ignore_tlog=bool(cosign.get("ignore-tlog") or False),
        ))
    return IndexEntry(
        name=_text(raw, "name", source=source, line=line, required=True),
        type=_text(raw, "type", source=source, line=line),
        registry=_text(raw, "registry", source=source, line=line, required=True),
        repository=_text(raw, "repository", source=source, line=line, required=True),
        description=_text(raw, "description", source=source, line=line),
        home=_text(raw, "home", source=source, line=line),
        keywords=_texts(raw, "keywords", source=source, line=line),
        license=_text(raw, "license", source=source, line=line),
        maintainers=maintainers,
        sources=_texts(raw, "sources", source=source, line=line),
        signature=signature,
        index=index_name,
    )


def dump_index(entries: Iterable[IndexEntry]) -> str:
    """An index.yaml for ``entries``, sorted by name (falcoctl's normal form)."""
    from falcoctl_py.textio import dump_yaml

    return dump_yaml([e.to_yaml_data() for e in sorted(entries, key=lambda e: e.name)])


# ---------------------------------------------------------------------------------------------
# merging and search


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


class MergedIndex:
    """The entries of every configured index; a later index wins on a name clash."""

    def __init__(self, indexes: Sequence[tuple[str, Sequence[IndexEntry]]] = ()) -> None:
        self._entries: dict[str, IndexEntry] = {}
        self.index_names: list[str] = []
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

    def entries(self, *, type: str | None = None, index: str | None = None) -> list[IndexEntry]:
        """All entries in merge order, optionally of one type or from one index."""
        return [
            e for e in self._entries.values()
            if (type is None or e.type == type) and (index is None or e.index == index)
        ]

    def search(
        self, keywords: Sequence[str], *, min_score: float = DEFAULT_MIN_SCORE,
        type: str | None = None,
    ) -> list[SearchHit]:
        """Entries whose name scores at least ``min_score`` against a keyword, or whose
        keywords contain one; best score first, then by name."""
        hits = []
        for entry in self.entries(type=type):
            joined = " ".join(entry.keywords)
            best = max((score(entry.name, k) for k in keywords), default=0.0)
            if best >= min_score or any(k in joined for k in keywords):
                hits.append(SearchHit(entry=entry, score=round(best, 4)))
        hits.sort(key=lambda h: (-h.score, h.entry.name))
        return hits

    def __len__(self) -> int:
        return len(self._entries)


def load_merged_index(config: Config, *, only: str | None = None) -> MergedIndex:
    """The merged index of the configured indexes, from the cache or fetched (and cached)."""
    from falcoctl_py.index_cache import load_index_entries

    merged = MergedIndex()
    for ref in config.indexes:
        if only is not None and ref.name != only:
            continue
        merged.add(ref.name, load_index_entries(ref))
    return merged


def search_artifacts(
    *, config: Config, keywords: Sequence[str], min_score: float = DEFAULT_MIN_SCORE,
    type: str | None = None,
) -> list[SearchHit]:
    """``artifact search``: the merged index searched by keywords."""
    from falcoctl_py.errors import UsageError

    if not 0.0 < min_score <= 1.0:
        raise UsageError(f"--min-score must be in (0, 1], not {min_score}")
    if not keywords:
        raise UsageError("give at least one keyword")
    return load_merged_index(config).search(keywords, min_score=min_score, type=type)


def list_artifacts(
    *, config: Config, type: str | None = None, index: str | None = None
) -> list[IndexEntry]:
    """``artifact list``: the merged index's entries, optionally of one type or index."""
    from falcoctl_py.errors import NotFoundError

    if index is not None and all(ref.name != index for ref in config.indexes):
        raise NotFoundError(f"no configured index named {index!r}",
                            hint="see `index list`, or add it with `index add`")
    return load_merged_index(config, only=index).entries(type=type)
