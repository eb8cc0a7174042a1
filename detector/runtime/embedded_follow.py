"""Embedded follow: ``falcoctl-py run`` follows artifacts itself (falco.yaml ``artifact.follow``).

``artifact.follow`` takes the keys of falcoctl.yaml's ``artifact.follow`` (``refs``, ``every``,
``cron``, ``startupBehavior``, ``rulesfilesDir``, ``pluginsDir``, ``stateDir``...) plus the
keys falcoctl.yaml sets elsewhere or the sidecar takes as flags, spelled as in falcoctl.yaml:
``plainHTTP``, ``resolveDeps``, ``noVerify``, ``allowedTypes``, ``caFile``,
``insecureSkipTLSVerify``, and ``config``: the falcoctl.yaml whose indexes and registry
credentials to use (default: falcoctl's own default path when it exists). Keys match
case-insensitively, and ``plain_http`` spellings are accepted too.

The follower (falcoctl_py.follow) checks requirements against the running detector's versions
directly (no HTTP round trip), asks the detector to validate staged rules files before it
switches them in, and hands the installed files to the host's ``on_artifact_update``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from detector.runtime.services import Versions
from falcoctl_py.errors import DetectorError

log = logging.getLogger("detector.follow")

# The keys this module takes itself (normalised: lower case, no underscores).
_OWN = ("config", "plainhttp", "cafile", "insecureskiptlsverify", "noverify", "resolvedeps",
        "allowedtypes")


class Reload(Protocol):
    """What a reload tells the follower."""

    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str: ...


class FollowHost(Protocol):
    """The running detector, as the follower sees it."""

    def versions(self) -> Versions: ...

    def validate_with(self, staged: list[Path], *, replaces: Path | None = None) -> object: ...

    def on_artifact_update(self, files: list[Path]) -> Reload: ...


def _norm(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _flag(value: object, where: str) -> bool:
    from falcoctl_py.config import parse_bool

    return parse_bool(value, f"artifact.follow.{where}")


class EmbeddedFollow:
    """The follower thread of a running detector."""

    def __init__(self, host: FollowHost, settings: Mapping[str, Any]) -> None:
        from falcoctl_py.actions.artifact import TlsOptions
        from falcoctl_py.actions.follow import build_follower
        from falcoctl_py.config import config_from_data, read_config_file

        own = {_norm(k): v for k, v in settings.items() if _norm(k) in _OWN}
        follow = {k: v for k, v in settings.items() if _norm(k) not in _OWN}
        tls = TlsOptions(
            plain_http=_flag(own.get("plainhttp", False), "plainHTTP"),
            ca_file=Path(str(own["cafile"])) if own.get("cafile") else None,
            insecure_skip_tls_verify=_flag(own.get("insecureskiptlsverify", False),
                                           "insecureSkipTLSVerify"),
        )
        base_path = own.get("config")
        path = Path(str(base_path)) if base_path else Path("/etc/falcoctl/falcoctl.yaml")
        data: dict[str, Any] = {}
        if base_path or path.exists():
            data = dict(read_config_file(path, create=False))
        artifact = dict(data.get("artifact") or {})
        artifact["follow"] = {**dict(artifact.get("follow") or {}), **follow}
        data["artifact"] = artifact
        config = config_from_data(data, env=os.environ, path=path if base_path else None)
        types = own.get("allowedtypes")
        self.host = host
        self.stop_event = threading.Event()
        self.follower = build_follower(
            config=config, versions=host.versions, validate=self.validate,
            on_update=self.on_update, tls=tls,
            no_verify=None if "noverify" not in own else _flag(own["noverify"], "noVerify"),
            resolve_deps=_flag(own.get("resolvedeps", True), "resolveDeps"),
            allowed_types=None if types is None else
            [str(t) for t in (types if isinstance(types, list) else str(types).split(","))],
        )
        self.rules_dir = Path(config.artifact.follow.rulesfiles_dir)
        self._thread = threading.Thread(target=self._run, name="embedded-follow", daemon=True)

    def validate(self, staged: list[Path]) -> None:
        """Refuse a new version whose rules files do not compile with the running set."""
        rules = [p for p in staged if p.suffix in (".yaml", ".yml")]
        if rules:
            self.host.validate_with(rules, replaces=self.rules_dir)

    def on_update(self, name: str, files: list[str], summary: object) -> None:
        paths = [Path(f) for f in files]
        if any(p.suffix == ".so" for p in paths):
            log.warning("follow: plugin files of %s were updated; restart the detector to load "
                        "them", name)
        result = self.host.on_artifact_update(paths)
        if not result.ok:
            log.error("follow: %s installed but the detector kept its rules: %s", name,
                      result.error)

    def start(self) -> EmbeddedFollow:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.follower.run(self.stop_event)
        except Exception as err:  # the detector keeps running without its follower
            log.error("embedded follow stopped: %s", err)

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(10)
        self.follower.close()


def start_embedded_follow(host: FollowHost,
                          settings: Mapping[str, Any] | None) -> EmbeddedFollow | None:
    """Start following when ``artifact.follow`` names references; None otherwise."""
    if not settings or not settings.get("refs"):
        return None
    try:
        return EmbeddedFollow(host, settings).start()
    except DetectorError:
        raise
    except Exception as err:
        raise DetectorError(f"artifact.follow: cannot start following: {err}",
                            hint="check artifact.follow in falco.yaml") from err
