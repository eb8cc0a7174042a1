"""References to artifacts, version ranges, and dependency resolution.

A user reference is ``name``, ``name:tag``, ``name:RANGE``, ``name@digest`` (``name`` looked up in
the configured indexes) or a full ``host/repo[:tag|:RANGE|@digest]``. A range is a list of
comparators joined by ``,`` or spaces (all must hold): ``^5`` (same major), ``~5.1`` (same minor),
``>=4``, ``<6``, ``=5.1.0``; partial versions are padded with zeros. A range picks the highest
tag of the repository that is a full semantic version and matches (pre-releases only when the
range names one).

Dependencies follow falcoctl (same major version; alternatives satisfy a dependency when one of
them is already chosen) but pick the latest compatible version a repository has, keep what is
already installed when it satisfies, and come out in a deterministic order: dependencies first,
then by name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import semver

from falcoctl_py.errors import DependencyError, NotFoundError, UsageError
from falcoctl_py.oci.media import DEPENDENCY_NAME_RE, SEMVER_RE, Dependency
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


# -- versions ---------------------------------------------------------------------------------


def parse_version(text: str, *, where: str = "version") -> semver.Version:
    """Tolerant semver (``5``, ``5.1``, ``v5.1.0``), as falcoctl reads config versions."""
    value = text.strip().lstrip("vV")
    try:
        return semver.Version.parse(value, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        raise UsageError(f"{where}: {text!r} is not a semantic version") from None


_TERM_RE = re.compile(
    r"^(\^|~|>=|<=|>|<|=)?\s*v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(-[0-9A-Za-z.-]+)?$"
)


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A conjunction of comparators over semantic versions."""

    text: str
    bounds: tuple[tuple[str, semver.Version], ...]
    allow_prerelease: bool

    def matches(self, version: semver.Version) -> bool:
        if version.prerelease and not self.allow_prerelease:
            return False
        for op, bound in self.bounds:
            cmp = version.compare(bound)
            if (
                (op == ">=" and cmp < 0)
                or (op == ">" and cmp <= 0)
                or (op == "<" and cmp >= 0)
                or (op == "<=" and cmp > 0)
            ):
                return False
        return True


def parse_range(text: str) -> VersionRange:
    """Parse a range such as ``^5``, ``~5.1``, ``>=4,<6`` or ``>=0.12 <1``."""
    terms = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not terms:
        raise UsageError(f"empty version range {text!r}")
    bounds: list[tuple[str, semver.Version]] = []
    for term in terms:
        match = _TERM_RE.match(term)
        if not match:
            raise UsageError(
                f"invalid version range term {term!r} in {text!r}",
                hint="use ^5, ~5.1, >=4,<6 or =5.1.0",
            )
        op, major_s, minor_s, patch_s, pre = match.groups()
        major = int(major_s)
        minor = None if minor_s is None or not minor_s.isdigit() else int(minor_s)
        patch = None if patch_s is None or not patch_s.isdigit() else int(patch_s)
        low = semver.Version(major, minor or 0, patch or 0, (pre or "-")[1:] or None)
        if minor is None:
            upper = semver.Version(major + 1, 0, 0)
        elif patch is None:
            upper = semver.Version(major, minor + 1, 0)
        else:
            upper = semver.Version(major, minor, patch + 1)
        op = op or "="
        if op == "^":
            if major > 0 or minor is None:
                caret = semver.Version(major + 1, 0, 0)
            elif minor > 0 or patch is None:
                caret = semver.Version(0, minor + 1, 0)
            else:
                caret = semver.Version(0, 0, (patch or 0) + 1)
            bounds += [(">=", low), ("<", caret)]
        elif op == "~":
            tilde = (
                semver.Version(major + 1, 0, 0)
                if minor is None
                else semver.Version(major, minor + 1, 0)
            )
            bounds += [(">=", low), ("<", tilde)]
        elif op == "=":
            bounds += (
                [(">=", low), ("<=", low)] if patch is not None else [(">=", low), ("<", upper)]
            )
        elif op == ">":
            bounds.append((">", low) if patch is not None else (">=", upper))
        elif op == "<=":
            bounds.append(("<=", low) if patch is not None else ("<", upper))
        else:
            bounds.append((op, low))
    return VersionRange(text, tuple(bounds), allow_prerelease="-" in text)


def version_tags(tags: Sequence[str]) -> list[tuple[semver.Version, str]]:
    """The tags that are full semantic versions (optionally with a leading v), ascending."""
    out = []
    for tag in tags:
        bare = tag[1:] if tag[:1] in "vV" else tag
        if SEMVER_RE.match(bare):
            out.append((semver.Version.parse(bare), tag))
    out.sort(key=lambda item: item[0])
    return out


def best_tag(tags: Sequence[str], rng: VersionRange) -> str | None:
    """The tag of the highest version matching ``rng``, or None."""
    matching = [tag for version, tag in version_tags(tags) if rng.matches(version)]
    return matching[-1] if matching else None


def latest_compatible(tags: Sequence[str], minimum: str) -> str | None:
    """The highest full-version tag with the same major as ``minimum`` and not below it."""
    low = parse_version(minimum)
    best = None
    for version, tag in version_tags(tags):
        if version.major == low.major and version.compare(low) >= 0:
            if version.prerelease and not low.prerelease:
                continue
            best = tag
    if best is None and minimum in tags:
        best = minimum
    return best


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
    installed = installed or {}
    chosen: dict[str, Node[P]] = {}
    for node in sorted(roots, key=lambda n: n.name):
        other = chosen.get(node.name)
        if other is not None:
            if parse_version(node.version).compare(parse_version(other.version)) > 0:
                log.warning(
                    "%s requested twice: keeping %s over %s", node.name, node.label, other.label
                )
                chosen[node.name] = node
            else:
                log.warning(
                    "%s requested twice: keeping %s over %s", node.name, other.label, node.label
                )
            continue
        chosen[node.name] = node
    needs: dict[str, list[tuple[str, str]]] = {}  # name -> [(requirer label, minimum)]
    queue = sorted(chosen)
    while queue:
        current = chosen[queue.pop(0)]
        for dep in sorted(current.dependencies, key=lambda d: d.name):
            options = [dep, *dep.alternatives]
            present = next((o for o in options if o.name in chosen), None)
            if present is not None:
                target = chosen[present.name]
                needs.setdefault(present.name, []).append((current.label, present.version))
                if _compatible(target.version, present.version):
                    continue
                if parse_version(target.version).major != parse_version(present.version).major:
                    raise _conflict(current, present, target, needs)
                if target.from_user:
                    raise _conflict(current, present, target, needs)
                upgraded = _fetch_latest(present, current, fetch, lookup, list_tags)
                upgraded.requested_by = [*target.requested_by, current.label]
                chosen[present.name] = upgraded
                queue.append(present.name)
                continue
            keep = next(
                (
                    o
                    for o in options
                    if o.name in installed and _compatible(installed[o.name], o.version)
                ),
                None,
            )
            if keep is not None:
                if kept is not None:
                    kept.append((keep.name, current.label))
                log.info(
                    "%s needs %s>=%s: installed %s:%s satisfies it",
                    current.label,
                    dep.name,
                    dep.version,
                    keep.name,
                    installed[keep.name],
                )
                continue
            node = _fetch_latest(dep, current, fetch, lookup, list_tags)
            node.requested_by.append(current.label)
            needs.setdefault(dep.name, []).append((current.label, dep.version))
            chosen[node.name] = node
            queue.append(node.name)
            queue.sort()
    return _order(chosen)


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
