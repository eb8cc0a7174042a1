"""Embedded follow: ``falcoctl-py run`` follows artifacts itself (falco.yaml ``artifact.follow``).

``artifact.follow`` takes falcoctl's keys (``refs``, ``every``, ``cron``, ``startupBehavior``,
``rulesfilesDir``, ``pluginsDir``, ``stateDir``..., case-insensitive) plus ``config``: the
falcoctl.yaml whose indexes and registry credentials to use (default: falcoctl's own default
path when it exists), and ``plain_http``, ``ca_file``, ``insecure_skip_tls_verify``,
``no_verify`` as the sidecar's flags.
The follower (falcoctl_py.follow) checks requirements against the running detector's versions
directly (no HTTP round trip), asks the detector to validate staged rules files before it
switches them in, and hands the installed files to :meth:`Runtime.on_artifact_update`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from falcoctl_py.errors import DetectorError

log = logging.getLogger("detector.follow")


class EmbeddedFollow:
    """The follower thread of a running detector."""

    def __init__(self, runtime: Any, settings: dict[str, Any]) -> None:
        from falcoctl_py.actions.artifact import TlsOptions
        from falcoctl_py.actions.follow import build_follower
        from falcoctl_py.config import config_from_data, read_config_file

        settings = dict(settings)
        base_path = settings.pop("config", None)
        tls = TlsOptions(
            plain_http=bool(settings.pop("plain_http", False)),
            ca_file=Path(str(settings.pop("ca_file"))) if settings.get("ca_file") else None,
            insecure_skip_tls_verify=bool(settings.pop("insecure_skip_tls_verify", False)),
        )
        settings.pop("ca_file", None)
        no_verify = settings.pop("no_verify", None)
        data: dict[str, Any] = {}
        path = Path(str(base_path)) if base_path else Path("/etc/falcoctl/falcoctl.yaml")
        if base_path or path.exists():
            data = dict(read_config_file(path, create=False))
        artifact = dict(data.get("artifact") or {})
        artifact["follow"] = {**dict(artifact.get("follow") or {}), **settings}
        data["artifact"] = artifact
        config = config_from_data(data, env=os.environ, path=path if base_path else None)
        self.runtime = runtime
        self.stop_event = threading.Event()
        self.follower = build_follower(
            config=config, versions=runtime.versions, validate=self.validate,
            on_update=self.on_update, tls=tls,
            no_verify=None if no_verify is None else bool(no_verify),
        )
        self.rules_dir = Path(config.artifact.follow.rulesfiles_dir)
        self._thread = threading.Thread(target=self._run, name="embedded-follow", daemon=True)

    def validate(self, staged: list[Path]) -> None:
        """Refuse a new version whose rules files do not compile with the running set."""
        rules = [p for p in staged if p.suffix in (".yaml", ".yml")]
        if not rules:
            return
        self.runtime.validate_with(rules, replaces=self.rules_dir)

    def on_update(self, name: str, files: list[str], summary: Any) -> None:
        paths = [Path(f) for f in files]
        if any(p.suffix == ".so" for p in paths):
            log.warning("follow: plugin files of %s were updated; restart the detector to load "
                        "them", name)
        result = self.runtime.on_artifact_update(paths)
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


def start_embedded_follow(runtime: Any, settings: Any) -> EmbeddedFollow | None:
    """Start following when ``artifact.follow`` names references; None otherwise."""
    if not isinstance(settings, dict) or not settings.get("refs"):
        return None
    try:
        return EmbeddedFollow(runtime, settings).start()
    except DetectorError:
        raise
    except Exception as err:
        raise DetectorError(f"artifact.follow: cannot start following: {err}",
                            hint="check artifact.follow in falco.yaml") from err
