"""References to artifacts, version ranges, and dependency resolution.

A user reference is ``name``, ``name:tag``, ``name:RANGE``, ``name@digest`` (``name`` looked up in
the configured indexes) or a full ``host/repo[:tag|:RANGE|@digest]``; a range picks the highest
matching tag (:mod:`.versions`).

Dependencies follow falcoctl (same major version; alternatives satisfy a dependency when one of
them is already chosen) but pick the latest compatible version a repository has, keep what is
already installed when it satisfies, and come out in a deterministic order: dependencies first,
then by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from falcoctl_py.artifact.versions import (
    best_tag,
    latest_compatible,
    parse_range,
    parse_version,
    version_tags,
)
from falcoctl_py.errors import DependencyError, NotFoundError, UsageError
from falcoctl_py.oci.media import DEPENDENCY_NAME_RE, Dependency
from falcoctl_py.oci.reference import (
    Reference,
    check_selector,
    looks_full,
    parse_reference,
    split_selector,
)

log = logging.getLogger(__name__)

IndexLookup = Callable[[str], Any]  # name -> IndexEntry | None (registry, repository, name, ...)


@runtime_checkable
class IndexListing(Protocol):
    """An index lookup that can also list every entry (to find one by its repository)."""

    def __call__(self, name: str) -> Any: ...

    def entries(self) -> Sequence[Any]: ...
P = TypeVar("P")

# Plugins the bundled detector has built in (its detector.rules.load.loader.PROVIDED_PLUGINS): the
# upstream falco-rules depend on ``container``, whose fields the detector provides itself.
DETECTOR_PROVIDES: dict[str, str] = {"container": "0.4.0"}


# -- references -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A user reference resolved against the indexes (no network yet)."""

    text: str
    ref: Reference
    entry: Any = None  # the index entry, when the reference named one

    @property
    def key(self) -> str:
        """The state key of this reference (the full reference, range kept as written)."""
        return str(self.ref)


def parse_artifact_ref(text: str, lookup: IndexLookup | None) -> ArtifactRef:
    """Turn ``name[:tag|:range|@digest]`` or a full reference into an :class:`ArtifactRef`."""
    text = text.strip()
    if not text:
        raise UsageError("empty artifact reference")
    if looks_full(text):
        return ArtifactRef(text, parse_reference(text), None)
    name, selector, digest = split_selector(text)
    if not DEPENDENCY_NAME_RE.match(name):
        raise UsageError(
            f"invalid artifact name {name!r}",
            hint="use an index name such as falco-rules, or HOST/REPOSITORY[:TAG]",
        )
    entry = lookup(name) if lookup is not None else None
    if entry is None:
        close = _close_names(name, lookup)
        raise NotFoundError(
            f"cannot find {name} among the configured indexes"
            + (f"; did you mean {' or '.join(close)}?" if close else ""),
            hint="check the name with `falcoctl-py artifact list`, "
            "or run `falcoctl-py index update`",
        )
    tag, rng = check_selector(selector, digest, ref=text)
    ref = Reference(entry.registry, entry.repository, tag=tag, digest=digest, range=rng)
    return ArtifactRef(text, ref, entry)


def _close_names(name: str, lookup: IndexLookup | None) -> list[str]:
    """Up to three index names close to a mistyped ``name`` (empty when the index can't list)."""
    import difflib

    if not isinstance(lookup, IndexListing):
        return []
    names = sorted({str(getattr(e, "name", "")) for e in lookup.entries()} - {""})
    return difflib.get_close_matches(name, names, n=3, cutoff=0.75)


def pin(aref: ArtifactRef, list_tags: Callable[[str], list[str]]) -> Reference:
    """The concrete reference to fetch: a range becomes the highest matching tag."""
    ref = aref.ref
    if ref.range is None:
        return ref
    rng = parse_range(ref.range)
    tags = list_tags(ref.name)
    tag = best_tag(tags, rng)
    if tag is None:
        versions = ", ".join(t for _, t in version_tags(tags)[-8:]) or "none"
        raise NotFoundError(
            f"no tag of {ref.name} matches {ref.range!r} (latest versions: {versions})",
            hint="widen the range, or list the tags with `falcoctl-py artifact info`",
        )
    log.debug("range %s of %s resolved to tag %s", ref.range, ref.name, tag)
    return ref.with_tag(tag)


# -- dependencies -----------------------------------------------------------------------------


@dataclass(slots=True)
class Node(Generic[P]):
    """One artifact chosen for installation."""

    name: str
    version: str
    dependencies: tuple[Dependency, ...]
    payload: P
    requested_by: list[str] = field(default_factory=list)
    from_user: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


Fetch = Callable[[ArtifactRef], tuple[str, str, tuple[Dependency, ...], P]]
"""Fetch an artifact's (name, version, dependencies, payload) for a pinned reference."""


def _compatible(have: str, need: str) -> bool:
    a, b = parse_version(have), parse_version(need)
    return a.major == b.major and a.compare(b) >= 0


def resolve_dependencies(
    roots: Sequence[Node[P]],
    *,
    fetch: Fetch[P],
    lookup: IndexLookup | None,
    list_tags: Callable[[str], list[str]],
    installed: dict[str, str] | None = None,
    kept: list[tuple[str, str]] | None = None,
) -> list[Node[P]]:
    """Close ``roots`` over their dependencies; return every node to install, dependencies first.

    ``installed`` maps names of artifacts already on disk to their versions: a dependency they
    satisfy is not fetched again, and is appended to ``kept`` as (name, requirer label).
    """
    closure = _Closure(fetch, lookup, list_tags, installed or {}, kept)
    closure.chosen = _distinct(roots)
    queue = sorted(closure.chosen)
    while queue:
        current = closure.chosen[queue.pop(0)]
        for dep in sorted(current.dependencies, key=lambda d: d.name):
            added, fetched = closure.satisfy(current, dep)
            if added:
                queue.append(added)
            if fetched:  # a new artifact: visited in name order (an upgrade: right after)
                queue.sort()
    return _order(closure.chosen)


def _distinct(roots: Sequence[Node[P]]) -> dict[str, Node[P]]:
    """The roots by name; a name requested twice keeps its higher version (with a warning)."""
    chosen: dict[str, Node[P]] = {}
    for node in sorted(roots, key=lambda n: n.name):
        other = chosen.get(node.name)
        if other is None:
            chosen[node.name] = node
            continue
        newer = parse_version(node.version).compare(parse_version(other.version)) > 0
        keep, drop = (node, other) if newer else (other, node)
        log.warning("%s requested twice: keeping %s over %s", node.name, keep.label, drop.label)
        chosen[node.name] = keep
    return chosen


@dataclass(slots=True)
class _Closure(Generic[P]):
    """The artifacts chosen so far, and what each dependency asked of them."""

    fetch: Fetch[P]
    lookup: IndexLookup | None
    list_tags: Callable[[str], list[str]]
    installed: dict[str, str]
    kept: list[tuple[str, str]] | None
    chosen: dict[str, Node[P]] = field(default_factory=dict)
    needs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # name -> [(by, min)]

    def satisfy(self, current: Node[P], dep: Dependency) -> tuple[str, bool]:
        """Meet ``current``'s dependency ``dep``: the name of a node to visit next (or ''), and
        whether it is newly fetched (not an upgrade)."""
        options = [dep, *dep.alternatives]
        present = next((o for o in options if o.name in self.chosen), None)
        if present is not None:
            return self._upgrade(current, present), False
        keep = next((o for o in options if o.name in self.installed
                     and _compatible(self.installed[o.name], o.version)), None)
        if keep is not None:
            if self.kept is not None:
                self.kept.append((keep.name, current.label))
            log.info("%s needs %s>=%s: installed %s:%s satisfies it", current.label, dep.name,
                     dep.version, keep.name, self.installed[keep.name])
            return "", False
        node = _fetch_latest(dep, current, self.fetch, self.lookup, self.list_tags)
        node.requested_by.append(current.label)
        self.needs.setdefault(dep.name, []).append((current.label, dep.version))
        self.chosen[node.name] = node
        return node.name, True

    def _upgrade(self, current: Node[P], present: Dependency) -> str:
        """A dependency on a chosen artifact: kept, upgraded within its major, or a conflict."""
        target = self.chosen[present.name]
        self.needs.setdefault(present.name, []).append((current.label, present.version))
        if _compatible(target.version, present.version):
            return ""
        same_major = parse_version(target.version).major == parse_version(present.version).major
        if not same_major or target.from_user:
            raise _conflict(current, present, target, self.needs)
        upgraded = _fetch_latest(present, current, self.fetch, self.lookup, self.list_tags)
        upgraded.requested_by = [*target.requested_by, current.label]
        self.chosen[present.name] = upgraded
        return present.name


def _conflict(
    requirer: Node[Any], dep: Dependency, target: Node[Any], needs: dict[str, list[tuple[str, str]]]
) -> DependencyError:
    others = [who for who, _ in needs.get(dep.name, []) if who != requirer.label]
    if target.from_user:
        others.insert(0, "the command line")
    other = others[0] if others else "another artifact"
    return DependencyError(
        f"cannot satisfy dependencies: {requirer.label} requires {dep.name}>={dep.version} "
        f"(same major) but {other} requires {target.label}",
        hint="install versions that agree on the major version, or use --no-resolve-deps",
    )


def _fetch_latest(
    dep: Dependency,
    requirer: Node[P],
    fetch: Fetch[P],
    lookup: IndexLookup | None,
    list_tags: Callable[[str], list[str]],
) -> Node[P]:
    entry = lookup(dep.name) if lookup is not None else None
    if entry is None:
        raise NotFoundError(
            f"{requirer.label} depends on {dep.name}:{dep.version}, "
            "which is in no configured index",
            hint="add an index that lists it, or use --no-resolve-deps",
        )
    repo = Reference(entry.registry, entry.repository)
    tags = list_tags(repo.name)
    tag = latest_compatible(tags, dep.version)
    if tag is None:
        raise NotFoundError(
            f"{requirer.label} depends on {dep.name}>={dep.version} (same major), "
            f"but {repo.name} has no such tag",
            hint="publish a compatible version, or use --no-resolve-deps",
        )
    aref = ArtifactRef(f"{dep.name}:{tag}", repo.with_tag(tag), entry)
    name, version, deps, payload = fetch(aref)
    return Node(name or dep.name, version or tag, deps, payload)


def _order(chosen: dict[str, Node[P]]) -> list[Node[P]]:
    """Dependencies before dependents, ties broken by name."""
    out: list[Node[P]] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen or name in path:
            return
        node = chosen[name]
        for dep in sorted(node.dependencies, key=lambda d: d.name):
            target = next((o.name for o in (dep, *dep.alternatives) if o.name in chosen), None)
            if target is not None:
                visit(target, (*path, name))
        seen.add(name)
        out.append(node)

    for name in sorted(chosen):
        visit(name, ())
    return out
