"""``artifact follow`` and ``artifact rollback`` as single calls, and the follower factory.

:func:`build_follower` layers flags over ``FALCOCTL_*`` over the config file (``artifact.follow``)
and returns a ready :class:`~falcoctl_py.follow.Follower`; the sidecar command and the embedded
runtime (``falcoctl-py run``) both use it. A flag not given arrives as ``None``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from falcoctl_py.errors import UsageError

if TYPE_CHECKING:
    from falcoctl_py.actions.artifact import TlsOptions
    from falcoctl_py.config import Config, FollowConfig
    from falcoctl_py.follow.compat import VersionsProvider
    from falcoctl_py.follow.follower import Follower, OnUpdate, Validate
    from falcoctl_py.follow.rollback import RollbackResult
    from falcoctl_py.follow.schedule import Schedule, StartupBehavior

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FollowRun:
    """What a follow session did before it was stopped."""

    refs: list[str]
    updates: list[str] = field(default_factory=list)


def build_follower(
    *,
    config_path: Path | None = None,
    config: Config | None = None,
    refs: Sequence[str] = (),
    every: str | None = None,
    cron: str | None = None,
    startup_behavior: str | None = None,
    falco_versions: str | None = None,
    versions: VersionsProvider | None = None,
    rulesfiles_dir: Path | None = None,
    plugins_dir: Path | None = None,
    assets_dir: Path | None = None,
    state_dir: Path | None = None,
    allowed_types: Sequence[str] | None = None,
    platform: str | None = None,
    resolve_deps: bool = True,
    no_verify: bool | None = None,
    verify_key: str | None = None,
    trusted_root: Path | None = None,
    tls: TlsOptions | None = None,
    timeout: float | None = None,
    on_update: OnUpdate | None = None,
    validate: Validate | None = None,
    for_detector: bool | None = None,
) -> Follower:
    """A follower from flags, environment and config file; ``versions`` overrides the URL.

    ``for_detector`` (default: when ``versions`` is given, i.e. embedded in the detector): the
    detector's built-in plugins satisfy dependencies (:data:`DETECTOR_PROVIDES`).

    Call ``follower.run(stop_event)`` (blocks until the event is set) or ``follower.tick()``,
    then ``follower.close()``. Over 60 lines only by its keyword parameters (one a flag).
    """
    from falcoctl_py.actions.artifact import (
        TlsOptions,
        index_lookup,
        install_dirs,
        load,
        make_client,
        make_verify,
        parse_allowed_types,
        platform_or_current,
    )
    from falcoctl_py.follow.follower import Follower

    if config is None:
        if config_path is None:
            raise UsageError("build_follower needs config or config_path")
        config = load(config_path)
    fol = config.artifact.follow
    refs = list(refs) or list(fol.refs)
    if not refs:
        raise UsageError(
            "no artifact to follow",
            hint="give references, or set artifact.follow.refs (FALCOCTL_ARTIFACT_FOLLOW_REFS)",
        )
    schedule, startup = _timing(fol, every=every, cron=cron, startup_behavior=startup_behavior)
    from falcoctl_py.artifact.resolve import DETECTOR_PROVIDES

    embedded = versions is not None if for_detector is None else for_detector
    if versions is None:
        versions = _versions_from_url(
            fol.falco_versions if falco_versions is None else falco_versions, timeout
        )
    client = make_client(config, tls or TlsOptions(), timeout=timeout)
    verify = make_verify(
        config,
        client,
        no_verify=no_verify or None,
        verify_key=verify_key,
        trusted_root=trusted_root,
    )
    return Follower(
        refs=refs,
        client=client,
        dirs=install_dirs(
            fol, rulesfiles_dir=rulesfiles_dir, plugins_dir=plugins_dir, assets_dir=assets_dir
        ),
        state_dir=state_dir or fol.state_dir,
        platform=platform_or_current(platform),
        schedule=schedule,
        startup=startup,
        lookup=index_lookup(config),
        allowed_types=parse_allowed_types(allowed_types, config),
        resolve_deps=resolve_deps,
        verify=verify,
        versions=versions,
        on_update=on_update,
        validate=validate,
        provided=DETECTOR_PROVIDES if embedded else None,
    )


def _timing(
    fol: FollowConfig, *, every: str | None, cron: str | None, startup_behavior: str | None
) -> tuple[Schedule, StartupBehavior]:
    """The schedule (flags over the config's ``every``/``cron``) and the start-up behaviour."""
    from falcoctl_py.follow.schedule import Schedule, StartupBehavior

    if every is None and cron is None:
        schedule = Schedule.from_options(every=None if fol.cron else fol.every, cron=fol.cron)
    else:
        schedule = Schedule.from_options(every=every, cron=cron)
    try:
        startup = StartupBehavior(startup_behavior or fol.startup_behavior)
    except ValueError:
        raise UsageError(
            f"unknown start-up behavior {startup_behavior!r}", hint="use skip, jitter or immediate"
        ) from None
    return schedule, startup


def _versions_from_url(url: str, timeout: float | None) -> VersionsProvider | None:
    """Falco's versions read from ``url`` at each check (``falcoVersions``); None without one."""
    if not url:
        return None
    from falcoctl_py.follow.compat import read_versions

    def versions_from_url() -> dict[str, object]:
        return read_versions(url, timeout=timeout or 10.0)

    return versions_from_url


def follow(
    make: Callable[[OnUpdate], Follower], *, stop: threading.Event | None = None
) -> FollowRun:
    """``artifact follow``: follow until SIGINT/SIGTERM (or ``stop``) with the follower that
    ``make`` builds around the update callback (a :func:`build_follower` call)."""
    updates: list[str] = []

    def on_update(name: str, files: list[str], summary: object) -> None:
        updates.append(name)

    follower = make(on_update)
    stop = stop or threading.Event()
    previous: dict[int, object] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("stopping on signal %d", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        follower.run(stop)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
        follower.close()
    return FollowRun(refs=[f.key for f in follower.followers], updates=updates)


def rollback(*, config_path: Path, name: str, state_dir: Path | None = None) -> RollbackResult:
    """``artifact rollback``: put back the kept previous version of ``name``, under the lock."""
    from falcoctl_py.actions.artifact import load
    from falcoctl_py.artifact.lock import state_lock
    from falcoctl_py.follow.rollback import rollback as do_rollback

    config = load(config_path)
    where = state_dir or config.artifact.follow.state_dir
    with state_lock(where):
        return do_rollback(state_dir=where, name=name)
