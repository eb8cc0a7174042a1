"""One check of one followed reference: pin, compare, and the checks before an update.

:class:`RefFollower` does what the :class:`~falcoctl_py.follow.follower.Follower` module
docstring lists for one reference and hands the nodes to write to ``Follower.apply``.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from falcoctl_py.artifact.plan import (
    Candidate,
    is_intact,
    verify_nodes,
)
from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    Node,
    parse_artifact_ref,
    pin,
    resolve_dependencies,
)
from falcoctl_py.artifact.state import ArtifactState, list_states, load_state
from falcoctl_py.artifact.versions import parse_version
from falcoctl_py.errors import (
    DependencyError,
    FalcoctlPyError,
    IntegrityError,
    NetworkError,
    UsageError,
    VerificationError,
)
from falcoctl_py.follow.compat import (
    check_compatibility,
    needs_versions,
)
from falcoctl_py.follow.diff import ChangeSummary
from falcoctl_py.follow.rollback import held_digests
from falcoctl_py.oci.media import SEMVER_RE
from falcoctl_py.oci.reference import Reference

if TYPE_CHECKING:
    from falcoctl_py.follow.follower import Follower

log = logging.getLogger(__name__)

_CACHE_DIGESTS = 8


@dataclass(slots=True)
class TickResult:
    """The outcome of one check of one reference."""

    ref: str
    status: str  # unchanged | updated | skipped | waiting | held | error
    digest: str = ""
    version: str = ""
    message: str = ""
    transient: bool = False
    retry_after: float | None = None
    requests: int = 0
    files: list[str] = field(default_factory=list)
    summary: ChangeSummary | None = None


class _Refused(Exception):
    """A digest that must not be installed (logged once, remembered)."""

    def __init__(self, reason: str, *, recheck: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.recheck = recheck  # re-evaluate when the detector's versions change


def is_floating(aref: ArtifactRef) -> bool:
    """A reference whose target may move to other versions: never downgrade it."""
    ref = aref.ref
    if ref.digest:
        return False
    if ref.range is not None or ref.tag is None:
        return True
    bare = ref.tag[1:] if ref.tag[:1] in "vV" else ref.tag
    return not SEMVER_RE.match(bare)


class RefFollower:
    """Follows one reference for a :class:`Follower`."""

    def __init__(self, owner: Follower, text: str) -> None:
        self.owner = owner
        self.text = text
        self.aref: ArtifactRef | None = None
        self.refused: dict[str, tuple[str, bool, str]] = {}  # digest -> (reason, recheck, versions)
        self.cache: dict[str, list[Node[Candidate]]] = {}
        self.waiting = threading.Event()
        self.failures = 0
        self._last_error = ""
        self._held_logged: set[str] = set()
        self.wake = threading.Event()

    @property
    def key(self) -> str:
        return self.aref.key if self.aref is not None else self.text

    # -- one check ----------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Check the reference once; never raises a :class:`FalcoctlPyError`."""
        stats = self.owner.client.stats
        before = stats.requests
        try:
            result = self._tick()
        except NetworkError as err:
            result = TickResult(self.key, "error", message=err.one_line(), transient=True)
            result.retry_after = err.retry_after
        except FalcoctlPyError as err:
            result = TickResult(self.key, "error", message=err.one_line())
        result.requests = stats.requests - before
        if result.status == "error":
            if result.message != self._last_error:
                log.warning("follow %s: %s", self.key, result.message)
            self._last_error = result.message
        else:
            if self._last_error:
                log.info("follow %s: working again", self.key)
            self._last_error = ""
        return result

    def _tick(self) -> TickResult:
        owner = self.owner
        if self.aref is None:
            self.aref = parse_artifact_ref(self.text, owner.lookup)
        aref = self.aref
        key = aref.key
        pinned = pin(aref, owner.client.list_tags)
        digest = pinned.digest or owner.client.head_manifest(pinned.name, pinned.target).digest
        state = load_state(owner.state_dir, key)
        if (
            state is not None
            and state.digest == digest
            and is_intact(state, owner.dirs, owner.platform)
        ):
            return TickResult(key, "unchanged", digest, state.version)
        if digest in held_digests(owner.state_dir, key):
            if digest not in self._held_logged:
                log.info("follow %s: %s was rolled back, not reinstalling it", key, digest[:19])
                self._held_logged.add(digest)
            return TickResult(key, "held", digest)
        refused = self.refused.get(digest)
        if refused is not None:
            # an incompatible digest is re-checked only when the detector's versions changed
            # (one local request to /versions; nothing is fetched from the registry again)
            now = json.dumps(owner.versions_refresh(), sort_keys=True) if refused[1] else ""
            if not refused[1] or now == refused[2]:
                return TickResult(key, "skipped", digest, message=refused[0])
        try:
            return self._update(aref, pinned.with_digest(digest), digest, state)
        except _Refused as why:
            versions_now = json.dumps(owner.versions_value(), sort_keys=True)
            self.refused[digest] = (why.reason, why.recheck, versions_now)
            if refused is None or refused[0] != why.reason:  # once per digest and reason
                log.warning("follow %s: skipping %s: %s", key, digest[:19], why.reason)
            return TickResult(key, "skipped", digest, message=why.reason)

    def _root(self, aref: ArtifactRef, at_digest: ArtifactRef, digest: str) -> Node[Candidate]:
        """The new digest's manifest and config (cached per digest: fetched once)."""
        if digest in self.cache:
            return self.cache[digest][0]
        inst = self.owner.installer()
        try:
            root = inst.node(inst.inspect(at_digest, aref.key), from_user=True)
        except (IntegrityError, VerificationError, UsageError) as err:
            raise _Refused(err.one_line()) from None
        root.requested_by.append("follow")
        if len(self.cache) >= _CACHE_DIGESTS:
            self.cache.pop(next(iter(self.cache)))
        self.cache[digest] = [root]
        return root

    def _with_dependencies(
        self, aref: ArtifactRef, root: Node[Candidate], digest: str
    ) -> list[Node[Candidate]]:
        """``root`` and the dependencies to write with it (resolved once per digest)."""
        owner = self.owner
        cached = self.cache.get(digest, [root])
        if len(cached) > 1 or not (owner.resolve_deps and root.dependencies):
            return cached
        installed = {
            s.name: s.version
            for s in list_states(owner.state_dir)
            if s.name and s.version and s.ref != aref.key
        }
        installed.update(owner.provided)
        loaded = (owner.versions_value() or {}).get("plugin_versions")
        if isinstance(loaded, dict):  # a plugin the detector runs satisfies a dependency
            installed.update({str(k): str(v) for k, v in loaded.items()})
        try:
            nodes = resolve_dependencies(
                [root],
                fetch=owner.installer().fetch,
                lookup=owner.lookup,
                list_tags=owner.client.list_tags,
                installed=installed,
                kept=[],
            )
        except DependencyError as err:
            raise _Refused(err.one_line()) from None
        nodes = [n for n in nodes if not n.payload.up_to_date or n is root]
        self.cache[digest] = [root, *(n for n in nodes if n is not root)]
        return nodes

    def _compatible(self, aref: ArtifactRef, node: Node[Candidate], digest: str) -> bool:
        """False while the detector's versions are unknown; raises _Refused when incompatible."""
        cand = node.payload
        if not needs_versions(cand.config, cand.artifact_type):
            return True
        if self.owner.watcher is None:  # no /versions source (--falco-versions ""): no checks
            return True
        versions = self.owner.versions_refresh()
        if versions is None:
            self.waiting.set()
            log.info(
                "follow %s: %s waits for the detector's versions to check its requirements",
                aref.key,
                node.label,
            )
            return False
        problems = check_compatibility(cand.config, cand.artifact_type, versions)
        if problems:
            raise _Refused(f"{node.label} is incompatible: {'; '.join(problems)}", recheck=True)
        return True

    def _update(
        self, aref: ArtifactRef, at_digest_ref: Reference, digest: str, state: ArtifactState | None
    ) -> TickResult:
        owner = self.owner
        at_digest = ArtifactRef(aref.text, at_digest_ref, aref.entry)
        root = self._root(aref, at_digest, digest)
        if (
            is_floating(aref)
            and state is not None
            and state.version
            and state.digest != digest
            and _older(root.version, state.version)
        ):
            raise _Refused(
                f"{root.label} is older than the installed {state.version}: "
                f"{aref.text} is a floating reference and is never downgraded"
            )
        if not self._compatible(aref, root, digest):
            return TickResult(aref.key, "waiting", digest, root.version)
        nodes = self._with_dependencies(aref, root, digest)
        for node in nodes:
            if node is not root and not self._compatible(aref, node, digest):
                return TickResult(aref.key, "waiting", digest, root.version)
        self.waiting.clear()
        if owner.verify is not None:
            try:
                verify_nodes(nodes, owner.verify, owner.lookup)
            except VerificationError as err:
                raise _Refused(f"signature of {root.label}: {err.one_line()}") from None
        return owner.apply(aref, nodes, digest)


def _older(version: str, than: str) -> bool:
    try:
        return parse_version(version).compare(parse_version(than)) < 0
    except FalcoctlPyError:
        return False
