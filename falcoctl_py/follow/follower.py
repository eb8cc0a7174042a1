"""Follow artifacts: check each reference on a schedule and switch to new digests safely.

One :class:`RefFollower` per reference. A check (``tick``) costs one manifest HEAD when nothing
changed (a range adds one tag list); only a new digest is fetched, and then, before anything is
written: the allowed types, no downgrade of a floating reference (``latest``, a partial version
such as ``5``, a range, any non-version tag), the requirements against the running detector's
``/versions`` (:mod:`falcoctl_py.follow.compat`), dependencies, the signature (install's verify
hook), download and staging, and the embedder's ``validate`` callback. A digest refused for any
of these reasons is logged once and not fetched again (an incompatible one is re-checked when
the detector's versions change). The switch (:mod:`falcoctl_py.follow.rollback`) replaces the
whole file set under the state-directory lock and keeps the previous version for rollback.

Transient failures (registry down, 429, 5xx, a cut connection) back off exponentially with
jitter, at least as long as ``Retry-After`` asks; nothing makes the follower exit but ``stop``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from falcoctl_py.artifact.archive import DEFAULT_MAX_EXTRACTED
from falcoctl_py.artifact.install import (
    DEFAULT_MAX_LAYER,
    Candidate,
    InstallDirs,
    Installer,
    VerifyHook,
    is_intact,
    verify_nodes,
)
from falcoctl_py.artifact.lock import state_lock
from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    IndexLookup,
    Node,
    parse_artifact_ref,
    parse_version,
    pin,
    resolve_dependencies,
)
from falcoctl_py.artifact.state import ArtifactState, list_states, load_state
from falcoctl_py.artifact.transaction import Staged, Transaction
from falcoctl_py.errors import (
    DependencyError,
    FalcoctlPyError,
    IntegrityError,
    NetworkError,
    UsageError,
    VerificationError,
)
from falcoctl_py.follow.compat import (
    VersionsProvider,
    VersionsWatcher,
    check_compatibility,
    needs_versions,
)
from falcoctl_py.follow.diff import ChangeSummary, summarize
from falcoctl_py.follow.rollback import held_digests
from falcoctl_py.follow.schedule import Schedule, StartupBehavior
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import SEMVER_RE, ArtifactType, Platform
from falcoctl_py.oci.reference import Reference

log = logging.getLogger(__name__)

OnUpdate = Callable[[str, list[str], ChangeSummary], None]
"""``on_update(artifact_name, installed_files, summary)`` after a switch."""
Validate = Callable[[list[Path]], None]
"""``validate(staged_files)`` before a switch: raise to refuse the new version."""

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


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _older(version: str, than: str) -> bool:
    try:
        return parse_version(version).compare(parse_version(than)) < 0
    except FalcoctlPyError:
        return False


class Follower:
    """Follows references and keeps their files current; embeddable (see ``run`` and ``tick``)."""

    def __init__(
        self,
        *,
        refs: Sequence[str],
        client: RegistryClient,
        dirs: InstallDirs,
        state_dir: Path,
        platform: Platform,
        schedule: Schedule,
        startup: StartupBehavior = StartupBehavior.jitter,
        lookup: IndexLookup | None = None,
        allowed_types: Sequence[str] = (),
        resolve_deps: bool = True,
        verify: VerifyHook | None = None,
        versions: VersionsProvider | None = None,
        on_update: OnUpdate | None = None,
        validate: Validate | None = None,
        max_backoff: float = 300.0,
        provided: Mapping[str, str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.client = client
        self.dirs = dirs
        self.state_dir = state_dir
        self.platform = platform
        self.schedule = schedule
        self.startup = startup
        self.lookup = lookup
        self.allowed_types = list(allowed_types)
        self.resolve_deps = resolve_deps
        self.verify = verify
        self.on_update = on_update
        self.validate = validate
        self.max_backoff = max_backoff
        self.provided = dict(provided or {})  # plugins the runtime has built in
        self.clock = clock or _utc_now  # injected by schedule tests
        self.followers = [RefFollower(self, text) for text in dict.fromkeys(refs)]
        self.watcher = (
            VersionsWatcher(versions, on_ready=self._versions_ready) if versions else None
        )
        self.stop_event = threading.Event()

    # -- pieces shared by the per-reference followers ------------------------------------------

    def installer(self) -> Installer:
        return Installer(
            client=self.client,
            lookup=self.lookup,
            dirs=self.dirs,
            state_dir=self.state_dir,
            platform=self.platform,
            allowed_types=self.allowed_types,
            max_layer_size=DEFAULT_MAX_LAYER,
            max_extracted=DEFAULT_MAX_EXTRACTED,
            progress=None,
        )

    def versions_value(self) -> dict[str, object] | None:
        return self.watcher.get() if self.watcher is not None else {}

    def versions_refresh(self) -> dict[str, object] | None:
        """The detector's versions now (``{}`` when no source is configured: nothing to check)."""
        if self.watcher is None:
            return {}
        return self.watcher.refresh()

    def _versions_ready(self) -> None:
        for follower in self.followers:
            if follower.waiting.is_set():
                follower.waiting.clear()
                follower.wake.set()

    def apply(self, aref: ArtifactRef, nodes: list[Node[Candidate]], digest: str) -> TickResult:
        """Stage, validate and switch ``nodes`` under the lock; returns the root's result."""
        key = aref.key
        with state_lock(self.state_dir, stop=self.stop_event):
            tx = Transaction(self.state_dir)
            tx.recover({self.dirs.rulesfiles, self.dirs.plugins, self.dirs.assets})
            current = load_state(self.state_dir, key)
            if (
                current is not None
                and current.digest == digest
                and is_intact(current, self.dirs, self.platform)
            ):
                return TickResult(key, "unchanged", digest, current.version)  # install did it
            inst = self.installer()
            todo = [n for n in nodes if not n.payload.up_to_date]
            if not any(n.payload.key == key for n in todo):
                return TickResult(key, "unchanged", digest)
            staged: dict[str, Staged] = {}
            try:
                for node in todo:
                    staged[node.payload.key] = inst.stage(node.payload)
                if self.validate is not None:
                    paths = [work.path(f.path) for work in staged.values() for f in work.files]
                    try:
                        self.validate(paths)
                    except Exception as err:  # the embedder's check: any refusal counts
                        raise _Refused(f"the detector refused the new files: {err}") from None
                results = [self._switch(tx, node, staged.pop(node.payload.key)) for node in todo]
            finally:
                for work in staged.values():
                    work.discard()
        root = next(r for r in results if r.ref == key)
        for result in results:
            assert result.summary is not None
            log.info("follow: updated %s", result.summary.text())
            if self.on_update is not None:
                try:
                    self.on_update(result.summary.name, result.files, result.summary)
                except Exception:  # the embedder's callback: the files are in place regardless
                    log.exception("follow: the update callback failed for %s", result.ref)
        return root

    def _switch(self, tx: Transaction, node: Node[Candidate], staged: Staged) -> TickResult:
        """Commit one staged artifact, keeping the version it replaces for rollback."""
        cand = node.payload
        dest = self.dirs.for_type(cand.artifact_type)
        old = load_state(self.state_dir, cand.key)
        old_map = {}
        for item in old.files if old else ():
            try:
                old_map[str(Path(item.path).relative_to(dest))] = Path(item.path)
            except ValueError:
                continue
        summary = summarize(
            ChangeSummary(
                name=node.name,
                ref=cand.key,
                from_version=old.version if old else "",
                to_version=node.version,
                from_digest=old.digest if old else "",
                to_digest=cand.root_digest,
            ),
            old_map,
            {f.path: staged.path(f.path) for f in staged.files},
            rules=cand.artifact_type is ArtifactType.rulesfile,
        )
        state = cand.to_state(node, self.platform, staged)
        paths = tx.commit(staged, state, old=old, keep_previous=True)
        return TickResult(
            cand.key, "updated", cand.root_digest, node.version, files=paths, summary=summary
        )

    # -- running ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the registry client's connections."""
        self.client.close()

    def tick(self) -> list[TickResult]:
        """Check every reference once, now, one after the other."""
        return [f.tick() for f in self.followers]

    def next_delay(self, follower: RefFollower, result: TickResult) -> float:
        """Seconds to the next check: the schedule, or a backoff after a transient failure."""
        period = self.schedule.seconds_until_next(self.clock())
        if not result.transient:
            follower.failures = 0
            return period
        follower.failures += 1
        base = min(1.0, max(period / 4, 0.05))
        cap = min(self.max_backoff, max(period, base))
        delay = min(cap, base * 2.0 ** (follower.failures - 1)) * random.uniform(0.5, 1.0)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        return delay

    def _loop(self, follower: RefFollower, first: float) -> None:
        stop = self.stop_event
        deadline = time.monotonic() + first
        while not stop.is_set():
            follower.wake.wait(max(0.0, deadline - time.monotonic()))
            follower.wake.clear()
            if stop.is_set():
                return
            try:
                result = follower.tick()
            except Exception:  # a bug must not end following: log it and try again later
                log.exception("follow %s: unexpected error", follower.key)
                result = TickResult(follower.key, "error", transient=True)
            deadline = time.monotonic() + self.next_delay(follower, result)

    def run(self, stop: threading.Event | None = None) -> None:
        """Follow until ``stop`` is set: one thread per reference; returns when all have ended."""
        if stop is not None:
            self.stop_event = stop
        stop = self.stop_event
        if self.watcher is not None:
            self.watcher.start(stop)
        now = self.clock()
        threads = []
        for follower in self.followers:
            first = self.schedule.first_delay(self.startup, now)
            log.info("following %s (first check in %.1fs)", follower.text, first)
            thread = threading.Thread(
                target=self._loop, args=(follower, first), name=f"follow-{follower.text}"
            )
            thread.daemon = True
            thread.start()
            threads.append(thread)
        stop.wait()
        for follower in self.followers:
            follower.wake.set()
        for thread in threads:
            thread.join(timeout=30)
