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
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from falcoctl_py.artifact.archive import DEFAULT_MAX_EXTRACTED
from falcoctl_py.artifact.lock import state_lock
from falcoctl_py.artifact.plan import (
    DEFAULT_MAX_LAYER,
    Candidate,
    InstallDirs,
    Installer,
    VerifyHook,
    is_intact,
)
from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    IndexLookup,
    Node,
)
from falcoctl_py.artifact.state import load_state
from falcoctl_py.artifact.transaction import Staged, Transaction
from falcoctl_py.follow.compat import (
    VersionsProvider,
    VersionsWatcher,
)
from falcoctl_py.follow.diff import ChangeSummary, summarize
from falcoctl_py.follow.schedule import Schedule, StartupBehavior
from falcoctl_py.follow.tick import RefFollower, TickResult, _Refused, is_floating
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import ArtifactType, Platform

__all__ = ["Follower", "OnUpdate", "RefFollower", "TickResult", "Validate", "is_floating"]

log = logging.getLogger(__name__)

OnUpdate = Callable[[str, list[str], ChangeSummary], None]
"""``on_update(artifact_name, installed_files, summary)`` after a switch."""
Validate = Callable[[list[Path]], None]
"""``validate(staged_files)`` before a switch: raise to refuse the new version."""



def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
