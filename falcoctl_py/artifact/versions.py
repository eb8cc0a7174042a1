"""Versions and version ranges of artifacts, as falcoctl reads them.

A range is a list of comparators joined by ``,`` or spaces (all must hold): ``^5`` (same major),
``~5.1`` (same minor), ``>=4``, ``<6``, ``=5.1.0``; partial versions are padded with zeros. A
range picks the highest tag of the repository that is a full semantic version and matches
(pre-releases only when the range names one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import semver

from falcoctl_py.errors import UsageError
from falcoctl_py.oci.media import SEMVER_RE

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
        bounds += _term_bounds(*match.groups())
    return VersionRange(text, tuple(bounds), allow_prerelease="-" in text)


def _term_bounds(
    op: str | None, major_s: str, minor_s: str | None, patch_s: str | None, pre: str | None
) -> list[tuple[str, semver.Version]]:
    """The bounds one comparator (``^5``, ``~5.1``, ``>=4``, ``5.1``...) stands for."""
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
        return [(">=", low), ("<", caret)]
    if op == "~":
        tilde = (
            semver.Version(major + 1, 0, 0)
            if minor is None
            else semver.Version(major, minor + 1, 0)
        )
        return [(">=", low), ("<", tilde)]
    if op == "=":
        return [(">=", low), ("<=", low)] if patch is not None else [(">=", low), ("<", upper)]
    if op == ">":
        return [(">", low) if patch is not None else (">=", upper)]
    if op == "<=":
        return [("<=", low) if patch is not None else ("<", upper)]
    return [(op, low)]


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
