"""The detector: a composition of the running rules (:class:`ActiveRules`), the event loop, the
reloader, the alert router and the services, started by :meth:`Runtime.run` and stopped by
:meth:`Runtime.stop` (any thread, signal handlers included).

``engine.kind`` picks the syscall source: the kernel through BCC for every kernel kind
(``modern_ebpf``, ``kmod``, ``ebpf``, ``auto``), ``replay`` (a capture file, ends at its end) or
``nodriver`` (no syscalls: plugin event sources only). Every plugin with event sourcing in
``load_plugins`` adds a source of its own, on its own thread.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from detector.config import FalcoConfig
from detector.drops import DropWatch
from detector.events import Event
from detector.metrics import Metrics
from detector.outputs import Outputs, build_outputs
from detector.plugins import LoadedPlugins, events_from, load_plugins
from detector.plugins.parsing import event_parsers
from detector.plugins.threadview import ThreadView
from detector.runtime.active import ActiveRules, Compiler, ConfigLoader
from detector.runtime.alerts import AlertRouter
from detector.runtime.loop import EventLoop
from detector.runtime.protocols import CaptureSink, EventSource, StateTracker, ThreadKeeping
from detector.runtime.reload import Reloader, ReloadResult
from detector.runtime.ruleset import RuleSet, compile_rules
from detector.runtime.services import (
    FALCO_COMPAT_VERSION,
    Services,
    Versions,
    versions_object,
)
from detector.runtime.streams import container_engines, syscall_source
from falcoctl_py.errors import DetectorError

if TYPE_CHECKING:
    from detector.plugins.base import Plugin
    from detector.runtime.watch import RulesWatcher
    from detector.webserver import WebServer

SignalHandler = Callable[[int, FrameType | None], Any] | int | None
SWITCH_INTERVAL = 0.001  # seconds; see Runtime.run

log = logging.getLogger("detector.runtime")

HOT_RESTART_FAILURE = "Falco internal: hot restart failure"
Stream = tuple[Iterable[Event | None], StateTracker | None, CaptureSink | None]


@dataclass(slots=True)
class RunResult:
    """What a run did (returned when it ends)."""

    dry_run: bool
    engine_kind: str
    rules_files: list[str]
    rule_count: int
    events: int = 0
    processed: int = 0  # the source's events (``events - drops`` when nothing was lost)
    async_events: int = 0  # events userspace made, e.g. ``container``: not among ``events``
    alerts: int = 0
    drops: int = 0
    output_drops: int = 0
    reloads: int = 0
    reload_failures: int = 0
    seconds: float = 0.0
    plugins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _snapshot_every(config: FalcoConfig) -> float:
    if not (config.metrics.enabled and config.metrics.output_rule):
        return 0.0
    from falcoctl_py.config import parse_duration

    return max(0.1, parse_duration(config.metrics.interval))


class Runtime:
    """A configured detector: call :meth:`run` (blocks) and :meth:`stop` (any thread)."""

    def __init__(
        self,
        config: FalcoConfig,
        *,
        compiler: Compiler = compile_rules,
        source: EventSource | None = None,
        tracker: StateTracker | None = None,
        outputs: Outputs | None = None,
        capture: Path | None = None,
        debounce: float = 0.1,
        webserver: bool | None = None,
        watch: bool | None = None,
        reload_config: ConfigLoader | None = None,
    ) -> None:
        self.metrics = Metrics(falco_version=FALCO_COMPAT_VERSION)
        self.thread_view = ThreadView()  # the plugins' ``threads`` table, bound to the tracker's
        self.plugins: LoadedPlugins = load_plugins(config, threads=self.thread_view)
        self._plugin_versions = self.plugins.versions()  # still known after destroy()
        try:
            self.rules = ActiveRules(config, compiler=compiler, plugins=self.plugins,
                                     metrics=self.metrics, reload_config=reload_config)
            snapshot_every = _snapshot_every(config)
        except BaseException:
            self.plugins.destroy()
            raise
        self._stopping = threading.Event()
        self.ready = threading.Event()
        self.router = AlertRouter(iso=config.time_format_iso_8601)
        if outputs is not None:
            self.router.attach(outputs)
        self.sources: list[EventSource] = []
        self._given_source = source
        self._tracker = tracker
        self._capture_path = capture
        self._capture: CaptureSink | None = None
        self._web_enabled = config.webserver.enabled if webserver is None else webserver
        self._watch_enabled = config.watch_config_files if watch is None else watch
        self.reloader = Reloader(self._rebuild, self._reload_failed, debounce=debounce)
        self.services = Services()
        self._drops = DropWatch(config, self.metrics, emit=self.router.internal, stop=self.stop)
        self.loop = EventLoop(rules=self.rules, metrics=self.metrics, alerts=self.router,
                              drops=self._drops, sources=self.sources, stopping=self._stopping,
                              snapshot_every=snapshot_every)
        self.loop.parse = event_parsers(self.plugins)

    # ---- what the parts and the tests read ---------------------------------------------------

    @property
    def config(self) -> FalcoConfig:
        return self.rules.config

    @property
    def ruleset(self) -> RuleSet:
        return self.rules.current

    @property
    def outputs(self) -> Outputs | None:
        return self.router.outputs

    @property
    def alerts(self) -> int:
        return self.loop.alerts

    @property
    def webserver(self) -> WebServer | None:
        return self.services.webserver

    @property
    def watcher(self) -> RulesWatcher | None:
        return self.services.watcher

    def versions(self) -> Versions:
        """The /versions object, in Falco's shape."""
        return versions_object(dict(self._plugin_versions))

    def metrics_text(self) -> str:
        """The /metrics text, with the sources' counters read now."""
        self._drops.update(self.sources, check_drops=False)
        return self.metrics.prometheus()

    def emit_internal(self, rule: str, priority: str, message: str,
                      fields: dict[str, object] | None = None) -> None:
        self.router.internal(rule, priority, message, fields)

    # ---- reloads -----------------------------------------------------------------------------

    def _rebuild(self, reason: str, extra: list[Path] | None = None) -> list[str]:
        return self.rules.rebuild(self.sources, extra or [])

    def _reload_failed(self, result: ReloadResult) -> None:
        self.metrics.reloads_failed += 1
        self.router.internal(HOT_RESTART_FAILURE, "Critical",
                             f"{HOT_RESTART_FAILURE}: {result.error}")

    def request_reload(self, reason: str) -> None:
        """Debounced reload (file watch, SIGHUP)."""
        self.reloader.trigger(reason)

    def validate_with(self, staged: list[Path], *, replaces: Path | None = None) -> RuleSet:
        """Compile the running rule set with ``staged`` files; raise if it does not compile."""
        return self.rules.validate_with(staged, replaces=replaces)

    def on_artifact_update(self, files: list[Path]) -> ReloadResult:
        """Hook for the embedded follower: validate the rule set including ``files``, then swap.

        Rules files already under ``rules_files`` are re-read from disk; other ``.yaml``/``.yml``
        files are added to the running set. A broken set keeps the running rules, raises the
        Critical internal alert and comes back as a failed result.
        """
        extra = [Path(f) for f in files if Path(f).suffix in (".yaml", ".yml")]
        return self.reloader.reload_now(
            "artifact update: " + (", ".join(map(str, files)) or "(no files)"),
            lambda reason: self._rebuild(reason, extra))

    # ---- sources -----------------------------------------------------------------------------

    def _syscall_source(self) -> EventSource | None:
        if self._given_source is not None:
            return self._given_source
        return syscall_source(self.config, self.ruleset.event_types, self.ruleset.syscall_rules)

    def _plugin_events(self, plugin: Plugin, params: str) -> Iterator[Event]:
        # Plugin fields are extracted when the rules first read them (detector.plugins.fields).
        for ref in events_from(plugin, params, self._stopping):
            yield Event(num=ref.num, ts=ref.ts, type="pluginevent", tid=0,
                        source=ref.source, plugin_data=ref.data)

    def _streams(self) -> list[Stream]:
        syscall_source = self._syscall_source()
        plugin_sources = list(self.plugins.sources().values())
        if syscall_source is None and not plugin_sources:
            raise DetectorError(
                f"engine.kind {self.config.engine.kind} with no plugin event source: "
                "nothing to read events from",
                hint="load a plugin with event sourcing (load_plugins, plugins), or use "
                     "engine.kind modern_ebpf or replay")
        streams: list[Stream] = []
        if syscall_source is not None:
            self.sources.append(syscall_source)
            if self._tracker is None and self.config.engine.runs_ebpf:
                from detector.state.tracker import StateTracker as Tracker

                tracker = Tracker(engines=container_engines(self.config))
                tracker.scan()
                self._tracker = tracker
            if isinstance(self._tracker, ThreadKeeping):  # plugins read its threads
                self.thread_view.bind(self._tracker.threads.threads)
            capture: CaptureSink | None = None
            if self._capture_path is not None:
                from detector.sources.capture import CaptureWriter

                capture = self._capture = CaptureWriter(str(self._capture_path))
            if self._tracker is not None:  # state applied, and Falco's ``container`` events added
                streams.append((self._tracker.stream(syscall_source), None, capture))
            else:
                streams.append((syscall_source, None, capture))
        for cfg, plugin in plugin_sources:
            streams.append((self._plugin_events(plugin, cfg.open_params), None, None))
        return streams

    # ---- services ----------------------------------------------------------------------------

    def _start_services(self) -> None:
        # The web server comes last: once /healthz answers, a rules change is already watched.
        self.reloader.start()
        if self._watch_enabled:
            self.services.start_watcher(self.rules.watched, self.request_reload)
        follow = self.config.artifact.follow
        if follow:
            from detector.runtime.embedded_follow import start_embedded_follow

            self.services.start_follow(start_embedded_follow(self, follow))
        if self._web_enabled:
            self.services.start_webserver(self.config, self.versions(), self.metrics_text)

    def _install_signals(self) -> list[tuple[int, SignalHandler]]:
        if threading.current_thread() is not threading.main_thread():
            return []

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d received, stopping", signum)
            self.stop()

        def hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload("SIGHUP")

        def usr1(signum: int, frame: FrameType | None) -> None:
            if self.router.outputs is not None:
                self.router.outputs.reopen()

        saved: list[tuple[int, SignalHandler]] = []
        for sig, handler in ((signal.SIGINT, stop), (signal.SIGTERM, stop),
                             (signal.SIGHUP, hup), (signal.SIGUSR1, usr1)):
            saved.append((sig, signal.signal(sig, handler)))
        return saved

    # ---- run and stop ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (safe from signal handlers and other threads)."""
        self._stopping.set()
        for s in self.sources:
            s.stop()

    def dry_run(self) -> RunResult:
        """Config, plugins and rules loaded and checked; nothing runs."""
        result = self._result(dry_run=True, seconds=0.0)
        self.plugins.destroy()
        return result

    def _result(self, *, dry_run: bool, seconds: float) -> RunResult:
        outputs = self.router.outputs
        out = outputs.stats() if outputs is not None else None
        m = self.metrics
        return RunResult(
            dry_run=dry_run, engine_kind=self.config.engine_kind,
            rules_files=[str(p) for p in self.ruleset.files],
            rule_count=self.ruleset.rule_count, events=m.n_evts, processed=m.processed,
            async_events=m.async_events, alerts=self.loop.alerts, drops=m.n_drops,
            output_drops=out.dropped if out else 0,
            reloads=m.reloads_ok, reload_failures=m.reloads_failed, seconds=seconds,
            plugins=dict(self._plugin_versions),
            warnings=list(self.config.warnings) + list(self.ruleset.warnings),
        )

    def run(self) -> RunResult:
        """Run until the sources end or a stop is requested; release everything."""
        start = time.monotonic()
        outputs = self.router.outputs
        if outputs is None:
            outputs = build_outputs(self.config)
            self.router.attach(outputs)
        self.metrics.outputs = outputs.stats
        saved_signals = self._install_signals()
        # The event loop is CPU-bound; with Python's default 5 ms switch interval the output,
        # reload and web threads wait up to 5 ms for the interpreter lock at every blocking
        # call and starve (measured: a file output wrote 18% of 60k alerts/s). 1 ms lets them
        # keep up, at a cost only while they have work.
        saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(saved_interval, SWITCH_INTERVAL))
        threads: list[threading.Thread] = []
        try:
            streams = self._streams()
            self._start_services()
            self.ready.set()
            if len(streams) > 1:
                self.loop.lock = threading.Lock()
            errors: list[BaseException] = []

            def drive(stream: Iterable[Event | None], trk: StateTracker | None,
                      cap: CaptureSink | None) -> None:
                try:
                    self.loop.run(stream, trk, cap)
                except BaseException as err:
                    errors.append(err)
                    self.stop()

            for stream in streams[1:]:
                t = threading.Thread(target=drive, args=stream, daemon=True,
                                     name="source-plugin")
                t.start()
                threads.append(t)
            self.loop.run(*streams[0])
            for t in threads:
                while t.is_alive() and not self._stopping.is_set():
                    t.join(0.2)
            if errors:
                raise errors[0]
        finally:
            self._stopping.set()
            for t in threads:
                t.join(2)
            self._shutdown(outputs, saved_signals)
            sys.setswitchinterval(saved_interval)
        return self._result(dry_run=False, seconds=time.monotonic() - start)

    def _shutdown(self, outputs: Outputs, saved: list[tuple[int, SignalHandler]]) -> None:
        for sig, handler in saved:
            signal.signal(sig, handler)
        self.services.stop()
        self.reloader.stop()
        self._drops.update(self.sources, check_drops=False)
        for s in self.sources:
            s.close()
        if self._capture is not None:
            self._capture.close()
        if self._tracker is not None:
            self._tracker.close()
        outputs.close(self.config.output_timeout / 1000)
        self.services.stop_webserver()
        self.plugins.destroy()
