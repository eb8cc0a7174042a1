"""OCI references ``host[:port]/repository[:tag|@digest]``; a version range may replace a tag."""

from __future__ import annotations

import re
from dataclasses import dataclass

from falcoctl_py.errors import UsageError

TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
REPO_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
HOST_RE = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference to an OCI artifact; at most one of tag, digest and range is set."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    range: str | None = None

    @property
    def name(self) -> str:
        """``host/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """The tag or digest to ask the registry for (``latest`` when neither is set)."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, digest=digest)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        if self.range:
            return f"{self.name}:{self.range}"
        return f"{self.name}:{self.tag or 'latest'}"


def is_range(selector: str) -> bool:
    """True when a tag position holds a version range (``^5``, ``~5.1``, ``>=4,<6``)."""
    return not TAG_RE.match(selector) and bool(re.match(r"^[\^~<>=!\d\s,.*xX-]+$", selector))


def split_selector(text: str) -> tuple[str, str | None, str | None]:
    """Split ``name[:tag|:range][@digest]`` into (name, selector, digest); host ports kept."""
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
    selector = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, selector = text[:colon], text[colon + 1 :]
    return text, selector, digest


def check_selector(
    selector: str | None, digest: str | None, *, ref: str
) -> tuple[str | None, str | None]:
    """Validate the tag/range and digest parts; returns (tag, range)."""
    if digest is not None and not DIGEST_RE.match(digest):
        raise UsageError(f"invalid digest in {ref!r}", hint="digests look like sha256:<64 hex>")
    if selector is None:
        return None, None
    if digest is not None:
        # name:tag@digest: the digest wins, as with docker; the tag is informative only.
        return None, None
    if TAG_RE.match(selector):
        return selector, None
    if is_range(selector):
        return None, selector
    raise UsageError(
        f"invalid tag {selector!r} in {ref!r}",
        hint="a tag is letters, digits, '_', '.', '-'; a range looks like ^5, ~5.1 or >=4,<6",
    )


_SEMVER_TAG = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def _prerelease_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """semver's pre-release precedence: numeric parts below alphanumeric ones, compared as such."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in text.split("."))


def _tag_key(tag: str) -> tuple[int, tuple[int, ...], int, tuple[tuple[int, int, str], ...], str]:
    match = _SEMVER_TAG.match(tag)
    if match is None:
        return (1, (), 0, (), tag)
    major, minor, patch, pre = match.groups()
    core = (int(major), int(minor), int(patch))
    return (0, core, 0 if pre else 1, _prerelease_key(pre) if pre else (), tag)


def sort_tags(tags: list[str]) -> list[str]:
    """Tags in version order (semver precedence, lowest first), then the other tags by name."""
    return sorted(tags, key=_tag_key)


def looks_full(text: str) -> bool:
    """True when ``text`` names a registry host (it contains '/'), as oras parses references."""
    return "/" in text.split("@", 1)[0]


def parse_reference(text: str) -> Reference:
    """Parse a full reference ``host/repo[:tag|:range|@digest]``."""
    name, selector, digest = split_selector(text.strip())
    if "/" not in name:
        raise UsageError(
            f"{text!r} is not a full reference", hint="use HOST/REPOSITORY[:TAG|@DIGEST]"
        )
    host, repository = name.split("/", 1)
    if not HOST_RE.match(host):
        raise UsageError(f"invalid registry host {host!r} in {text!r}")
    if not repository or not all(REPO_COMPONENT_RE.match(c) for c in repository.split("/")):
        raise UsageError(
            f"invalid repository {repository!r} in {text!r}",
            hint="repositories are lower-case path components",
        )
    tag, rng = check_selector(selector, digest, ref=text)
    return Reference(host, repository, tag=tag, digest=digest, range=rng)
