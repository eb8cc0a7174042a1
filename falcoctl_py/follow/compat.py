"""Is an artifact compatible with the running detector? Its ``/versions`` and the checks on it.

Requirements follow falcoctl: each requirement name must be a string key of ``/versions``; an
integer version (legacy ``engine_version``) compares as an integer, any other as strict semver
with the same major and a version not below. Beyond falcoctl, a rules file's dependencies on
plugins are checked against the ``plugin_versions`` map: a plugin the detector has loaded (or
one of its alternatives) must have the same major and a version not below the one required.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import semver

from falcoctl_py.errors import NetworkError
from falcoctl_py.oci.media import ArtifactConfig, ArtifactType, Dependency

log = logging.getLogger(__name__)

Versions = dict[str, Any]
VersionsProvider = Callable[[], Versions]
"""Returns the detector's ``/versions`` object; raises :class:`NetworkError` when unreachable."""

_INT_RE = re.compile(r"^(0|[1-9]\d*)$")


def read_versions(source: str, *, timeout: float = 10.0) -> Versions:
    """``/versions`` from an http(s) URL or a local JSON file."""
    try:
        if source.startswith(("http://", "https://")):
            from falcoctl_py.http import make_client

            with make_client(timeout=timeout) as http:
                resp = http.get(source)
            if resp.status_code != 200:
                raise NetworkError(
                    f"{source} answered {resp.status_code}", url=source, status=resp.status_code
                )
            raw = resp.json()
        else:
            path = Path(source[7:] if source.startswith("file://") else source)
            raw = json.loads(path.read_text())
    except NetworkError:
        raise
    except Exception as err:  # httpx errors, OSError, bad JSON: all mean "not available"
        raise NetworkError(
            f"cannot read the detector's versions from {source}: {type(err).__name__}: {err}",
            url=source,
            hint="is the detector's webserver up? (--falco-versions)",
        ) from None
    if not isinstance(raw, dict):
        raise NetworkError(f"{source} did not return a JSON object", url=source)
    return raw


def _tolerant(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text.strip().lstrip("vV"), optional_minor_and_patch=True)
    except ValueError:
        return None


def _compare(have: str, need: str, what: str) -> str | None:
    """None when ``have`` satisfies ``need``, else the reason."""
    if _INT_RE.match(need.strip()):
        if not _INT_RE.match(have.strip()):
            have_v = _tolerant(have)
            if have_v is not None and have_v.minor >= int(need):
                return None
            return f"{what}: the detector has {have}, the artifact needs {need}"
        return None if int(have) >= int(need) else f"{what}: needs {need}, the detector has {have}"
    want, got = _tolerant(need), _tolerant(have)
    if want is None:
        return f"{what}: the artifact's version {need!r} is not a semantic version"
    if got is None:
        return f"{what}: the detector's version {have!r} is not a semantic version"
    if got.major != want.major:
        return f"{what}: MAJOR mismatch, needs {need}, the detector has {have}"
    if got.compare(want) < 0:
        return f"{what}: needs {need} or newer, the detector has {have}"
    return None


def check_compatibility(
    config: ArtifactConfig, kind: ArtifactType, versions: Mapping[str, Any]
) -> list[str]:
    """Every reason ``config`` cannot run on the detector described by ``versions`` (none: ok)."""
    problems: list[str] = []
    for req in config.requirements:
        have = versions.get(req.name)
        if not isinstance(have, str):
            problems.append(
                f"requirement {req.name}>={req.version}: the detector does not report it"
            )
            continue
        reason = _compare(have, req.version, f"requirement {req.name}")
        if reason:
            problems.append(reason)
    loaded = versions.get("plugin_versions")
    if kind is ArtifactType.rulesfile and isinstance(loaded, dict):
        for dep in config.dependencies:
            reason = _check_dependency(dep, {str(k): str(v) for k, v in loaded.items()})
            if reason:
                problems.append(reason)
    return problems


def _check_dependency(dep: Dependency, loaded: Mapping[str, str]) -> str | None:
    options = [dep, *dep.alternatives]
    present = [o for o in options if o.name in loaded]
    if not present:
        return None  # not loaded: dependency resolution installs it; the detector must load it
    reasons = []
    for option in present:
        reason = _compare(loaded[option.name], option.version, f"plugin {option.name}")
        if reason is None:
            return None
        reasons.append(reason)
    return "; ".join(reasons)


def needs_versions(config: ArtifactConfig, kind: ArtifactType) -> bool:
    """Whether checking ``config`` needs the detector's versions at all."""
    return bool(config.requirements) or (
        kind is ArtifactType.rulesfile and bool(config.dependencies)
    )


class VersionsWatcher:
    """Fetches ``/versions`` in the background until it answers, with backoff and jitter."""

    def __init__(
        self,
        provider: VersionsProvider,
        *,
        first_delay: float = 1.0,
        max_delay: float = 60.0,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._provider = provider
        self._first = first_delay
        self._max = max_delay
        self._on_ready = on_ready
        self._value: Versions | None = None
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self) -> Versions | None:
        """The last versions read, or None while the detector has not answered yet."""
        with self._lock:
            return self._value

    def refresh(self) -> Versions | None:
        """Read the versions now (the detector may have restarted); keep the last on failure."""
        try:
            value = self._provider()
        except NetworkError as err:
            log.debug("versions unavailable: %s", err.one_line())
            return self.get()
        self._set(value)
        return value

    def _set(self, value: Versions) -> None:
        with self._lock:
            self._value = value
        if not self.ready.is_set():
            self.ready.set()
            if self._on_ready is not None:
                self._on_ready()

    def start(self, stop: threading.Event) -> None:
        """Try once now; if that fails, keep trying in a daemon thread until ``stop``."""
        if self.refresh() is not None:
            return

        def loop() -> None:
            delay = self._first
            warned = False
            while not stop.is_set():
                try:
                    self._set(self._provider())
                    log.info("the detector's versions are available")
                    return
                except NetworkError as err:
                    if not warned:
                        log.warning(
                            "%s; updates with requirements wait, retrying in the background",
                            err.one_line(),
                        )
                        warned = True
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(self._max, delay * 1.6)

        self._thread = threading.Thread(target=loop, name="follow-versions", daemon=True)
        self._thread.start()
