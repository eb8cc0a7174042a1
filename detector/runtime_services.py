"""The services beside a detector's event loop: the web server (/healthz, /versions, /metrics),
the rules file watcher and the embedded artifact follower."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from detector.drops import DropWatch
from detector.runtime_rules import RuntimeRules

log = logging.getLogger("detector.runtime")

FALCO_COMPAT_VERSION = "0.42.0"  # the Falco release whose behaviour the detector follows


class RuntimeServices(RuntimeRules):
    """The services half of :class:`detector.runtime.Runtime` (a mixin: it owns the state)."""

    follow: Any
    webserver: Any
    watcher: Any
    _web_enabled: bool
    _watch_enabled: bool
    _drops: DropWatch

    def versions(self) -> dict[str, Any]:
        """The /versions object, in Falco's shape."""
        from detector.plugins import PLUGIN_API_VERSION
        from detector.rules.versions import ENGINE_VERSION
        from falcoctl_py import __version__

        return {
            # No Falco kernel driver or libs here (BCC programs instead): 0.0.0, not a guess.
            "default_driver_version": "bcc",
            "driver_api_version": "0.0.0",
            "driver_schema_version": "0.0.0",
            "engine_version": ENGINE_VERSION.split(".")[1],
            "engine_version_semver": ENGINE_VERSION,
            "falco_version": FALCO_COMPAT_VERSION,
            "falcoctl_py_version": __version__,
            "libs_version": "0.0.0",
            "plugin_api_version": PLUGIN_API_VERSION,
            "plugin_versions": self.plugins.versions(),
        }

    def metrics_text(self) -> str:
        """The /metrics text, with the sources' counters read now."""
        self._drops.update(self.sources, check_drops=False)
        return self.metrics.prometheus()

    def _start_services(self) -> None:
        if self._web_enabled:
            from detector.webserver import WebEndpoints, WebServer

            c = self.config
            prom = c.flag("metrics.enabled", True) and \
                c.flag("webserver.prometheus_metrics_enabled", True)
            self.webserver = WebServer(
                WebEndpoints(self.versions(), self.metrics_text if prom else None,
                             str(c.get("webserver.k8s_healthz_endpoint", "/healthz"))),
                address=str(c.get("webserver.listen_address", "0.0.0.0")),
                port=int(c.get("webserver.listen_port", 8765)),
                ssl_certificate=str(c.get("webserver.ssl_certificate"))
                if c.flag("webserver.ssl_enabled") else None,
            ).start()
        self.reloader.start()
        if self._watch_enabled:
            from detector.watch import RulesWatcher

            base = self.config.path.parent if self.config.path else None

            def entries() -> list[Path]:
                out = [Path(e) if Path(e).is_absolute() or base is None else base / e
                       for e in self.config.rules_files]
                out.extend(self._extra_rules)
                if self.config.path is not None and self._reload_config is not None:
                    out.append(self.config.path)
                return out

            self.watcher = RulesWatcher(entries, self.request_reload).start()
            log.info("watching rules files (%s)", self.watcher.mode)
        follow = self.config.get("artifact.follow")
        if follow:
            from detector.embedded_follow import start_embedded_follow

            self.follow = start_embedded_follow(self, follow)

    def _stop_services(self) -> None:
        if self.follow is not None:
            self.follow.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.reloader.stop()

