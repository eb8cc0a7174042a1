"""The services beside a detector's event loop: the web server (/healthz, /versions, /metrics),
the rules file watcher and the embedded artifact follower; started together, stopped in
reverse order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from detector.config import FalcoConfig
from detector.runtime.protocols import Service

if TYPE_CHECKING:
    from detector.runtime.watch import RulesWatcher
    from detector.webserver import WebServer

log = logging.getLogger("detector.runtime")

FALCO_COMPAT_VERSION = "0.42.0"  # the Falco release whose behaviour the detector follows


Versions = dict[str, str | dict[str, str]]  # the /versions object


def versions_object(plugin_versions: dict[str, str]) -> Versions:
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
        "plugin_versions": plugin_versions,
    }


class Services:
    """What runs beside the loop; each part optional, each stopped once."""

    def __init__(self) -> None:
        self.webserver: WebServer | None = None
        self.watcher: RulesWatcher | None = None
        self.follow: Service | None = None
        self._started: list[Service] = []

    def start_webserver(self, config: FalcoConfig, versions: Versions,
                        metrics_text: Callable[[], str]) -> None:
        from detector.webserver import WebEndpoints, WebServer

        w = config.webserver
        prom = config.metrics.enabled and w.prometheus_metrics_enabled
        self.webserver = WebServer(
            WebEndpoints(versions, metrics_text if prom else None, w.k8s_healthz_endpoint),
            address=w.listen_address, port=w.listen_port,
            ssl_certificate=w.ssl_certificate if w.ssl_enabled else None,
        ).start()

    def start_watcher(self, entries: Callable[[], list[Path]],
                      on_change: Callable[[str], None]) -> None:
        from detector.runtime.watch import RulesWatcher

        watcher = self.watcher = RulesWatcher(entries, on_change).start()
        self._started.append(watcher)
        log.info("watching rules and config files (%s)", watcher.mode)

    def start_follow(self, follow: Service | None) -> None:
        self.follow = follow
        if follow is not None:
            self._started.append(follow)

    def stop_webserver(self) -> None:
        """The web server goes last: /healthz answers until everything else is down."""
        if self.webserver is not None:
            self.webserver.stop()

    def stop(self) -> None:
        """Stop the follower and the watcher, last started first; failures do not stop others."""
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception as err:  # shutting down: report and go on
                log.warning("stopping %s: %s", type(service).__name__, err)
