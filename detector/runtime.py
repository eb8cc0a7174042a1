"""The detector's main loop: source -> state -> rules -> outputs, with metrics, drop alerts,
hot reload, web endpoints and a clean shutdown on SIGINT/SIGTERM.

``engine.kind`` picks the syscall source: ``ebpf`` (the kernel through BCC), ``replay`` (a
capture file, ends at its end) or ``nodriver`` (no syscalls: plugin event sources only). Every
plugin with event sourcing in ``load_plugins`` adds a source of its own, on its own thread.
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
from typing import Any

from detector.config import FalcoConfig
from detector.drops import DropWatch
from detector.events import Event
from detector.feeds import SyscallFeed
from detector.metrics import Metrics, sha256_file
from detector.outputs import Outputs, build_outputs
from detector.outputs.format import internal_alert, priority_level
from detector.plugins import LoadedPlugins, events_from, load_plugins
from detector.reload import Reloader, ReloadResult
from detector.ruleset import RuleSet, compile_rules
from detector.runtime_rules import Compiler
from detector.runtime_services import FALCO_COMPAT_VERSION, RuntimeServices
from falcoctl_py.errors import DetectorError

SWITCH_INTERVAL = 0.001  # seconds; see Runtime.run

log = logging.getLogger("detector.runtime")

HOT_RESTART_FAILURE = "Falco internal: hot restart failure"
METRICS_RULE = "Falco internal: metrics snapshot"


@dataclass(slots=True)
class RunResult:
    """What a run did (returned when it ends)."""

    dry_run: bool
    engine_kind: str
    rules_files: list[str]
    rule_count: int
    events: int = 0
    processed: int = 0
    alerts: int = 0
    drops: int = 0
    output_drops: int = 0
    reloads: int = 0
    reload_failures: int = 0
    seconds: float = 0.0
    plugins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Runtime(RuntimeServices):
    """A configured detector: call :meth:`run` (blocks) and :meth:`stop` (any thread)."""

    def __init__(
        self,
        config: FalcoConfig,
        *,
        compiler: Compiler = compile_rules,
        source: Any = None,
        tracker: Any = None,
        outputs: Outputs | None = None,
        capture: Path | None = None,
        debounce: float = 0.1,
        webserver: bool | None = None,
        watch: bool | None = None,
        reload_config: Callable[[], FalcoConfig] | None = None,
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self.compiler = compiler
        self.metrics = Metrics(falco_version=FALCO_COMPAT_VERSION)
        self.metrics.config_files = ({str(config.path): sha256_file(config.path)}
                                     if config.path else {})
        self._stopping = threading.Event()
        self._extra_rules: list[Path] = []  # added by the embedded follower, kept across reloads
        self.follow: Any = None
        self.ready = threading.Event()
        self._early_alerts: list[Any] = []
        self._early_lock = threading.Lock()  # set once sources, watcher and web server run
        self._iso = config.flag("time_format_iso_8601")
        self.plugins: LoadedPlugins = load_plugins(config)
        self._plugin_versions = self.plugins.versions()
        try:
            self.ruleset: RuleSet = self._compile(self._rules_paths())
        except BaseException:
            self.plugins.destroy()
            raise
        self._process: Callable[[Event], list[Any]] = self.ruleset.engine.process
        self._note_ruleset(self.ruleset)
        self._given_source = source
        self._tracker = tracker
        self._capture_path = capture
        self._outputs = outputs
        self._web_enabled = config.flag("webserver.enabled", True) if webserver is None \
            else webserver
        self._watch_enabled = config.flag("watch_config_files", True) if watch is None else watch
        self.reloader = Reloader(self._rebuild, self._reload_failed, debounce=debounce)
        self.sources: list[Any] = []
        self.webserver: Any = None
        self.watcher: Any = None
        self.alerts = 0
        self._lock: threading.Lock | None = None
        self._drops = DropWatch(config, self.metrics, emit=self.emit_internal, stop=self.stop)
        self._last_tick = time.monotonic()
        self._snapshot_every = 0.0
        if config.flag("metrics.enabled", True) and config.flag("metrics.output_rule"):
            from falcoctl_py.config import parse_duration

            self._snapshot_every = max(0.1, parse_duration(str(config.get("metrics.interval",
                                                                          "1h"))))
        self._next_snapshot = time.monotonic() + self._snapshot_every

    # ---- alerts ------------------------------------------------------------------------------

    def _reload_failed(self, result: ReloadResult) -> None:
        self.metrics.reloads_failed += 1
        self.emit_internal(HOT_RESTART_FAILURE, "Critical",
                           f"{HOT_RESTART_FAILURE}: {result.error}")

    def emit_internal(self, rule: str, priority: str, message: str,
                      fields: dict[str, Any] | None = None) -> None:
        alert = internal_alert(rule, priority, message, fields, iso=self._iso)
        with self._early_lock:
            if self._outputs is None:  # before run() built the outputs: sent when they exist
                self._early_alerts.append(alert)
                return
        self._outputs.emit(alert)

    @property
    def outputs(self) -> Outputs | None:
        return self._outputs

    # ---- sources -----------------------------------------------------------------------------

    def _syscall_source(self) -> Any:
        kind = self.config.engine_kind
        if self._given_source is not None:
            return self._given_source
        if kind == "replay":
            from detector.sources.replay import ReplaySource

            path = str(self.config.get("engine.replay.capture_file", "") or "")
            if not path:
                raise DetectorError("engine.kind is replay but engine.replay.capture_file is "
                                    "empty", hint="-o engine.replay.capture_file=FILE")
            return ReplaySource(path)
        if kind == "ebpf":
            return SyscallFeed(self.config, self.ruleset.event_types)
        return None

    def _plugin_events(self, plugin: Any, params: str) -> Iterator[Event]:
        # Plugin fields are extracted when the rules first read them (detector.plugins.fields).
        for ref in events_from(plugin, params, self._stopping):
            yield Event(num=ref.num, ts=ref.ts, type="pluginevent", tid=0,
                        source=ref.source, plugin_data=ref.data)

    # ---- the loop ----------------------------------------------------------------------------

    def _loop(self, events: Iterable[Event | None], tracker: Any, capture: Any) -> None:
        metrics = self.metrics
        count = metrics.count_match
        lock = self._lock
        stopping = self._stopping
        drains = getattr(events, "drains_on_stop", False)
        n = 0
        for ev in events:
            if ev is None:  # the source's idle heartbeat
                if not drains and stopping.is_set():
                    break
                self._tick()
                continue
            if not drains and stopping.is_set():
                break
            if tracker is not None:
                ev = tracker.process(ev)
            if capture is not None:
                capture.write(ev)
            if lock is not None:
                with lock:
                    alerts = self._process(ev)
            else:
                alerts = self._process(ev)
            if alerts:
                for alert in alerts:
                    self.alerts += 1
                    count(alert.rule, priority_level(alert.priority), alert.source, alert.tags)
                    if self._outputs is not None:
                        self._outputs.emit(alert)
            metrics.processed += 1
            n += 1
            if not n & 1023:
                self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick < 1.0:
            return
        self._last_tick = now
        self._drops.update(self.sources, check_drops=True)
        if self._snapshot_every and now >= self._next_snapshot:
            self._next_snapshot = now + self._snapshot_every
            self._metrics_snapshot()

    def _metrics_snapshot(self) -> None:
        """Falco's ``metrics.output_rule``: an Informational internal alert with the counters."""
        m = self.metrics
        out = self._outputs.stats() if self._outputs is not None else None
        self.emit_internal(METRICS_RULE, "Informational", METRICS_RULE, {
            "scap.n_evts": m.n_evts, "scap.n_drops": m.n_drops,
            "scap.n_drops_buffer_total": m.n_drops_buffer,
            "falco.n_evts_processed": m.processed, "falco.num_alerts": self.alerts,
            "falco.outputs_queue_num_drops": out.dropped if out else 0,
            "falco.reloads": m.reloads_ok, "falco.reload_failures": m.reloads_failed,
        })

    def _install_signals(self) -> list[tuple[int, Any]]:
        if threading.current_thread() is not threading.main_thread():
            return []

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d received, stopping", signum)
            self.stop()

        def hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload("SIGHUP")

        def usr1(signum: int, frame: FrameType | None) -> None:
            if self._outputs is not None:
                self._outputs.reopen()

        saved: list[tuple[int, Any]] = []
        for sig, handler in ((signal.SIGINT, stop), (signal.SIGTERM, stop),
                             (signal.SIGHUP, hup), (signal.SIGUSR1, usr1)):
            saved.append((sig, signal.signal(sig, handler)))
        return saved

    def stop(self) -> None:
        """Ask the loop to end (safe from signal handlers and other threads)."""
        self._stopping.set()
        for s in self.sources:
            stop = getattr(s, "stop", None)
            if callable(stop):
                stop()

    def dry_run(self) -> RunResult:
        """Config, plugins and rules loaded and checked; nothing runs."""
        result = self._result(dry_run=True, seconds=0.0)
        self.plugins.destroy()
        return result

    def _result(self, *, dry_run: bool, seconds: float) -> RunResult:
        out = self._outputs.stats() if self._outputs is not None else None
        return RunResult(
            dry_run=dry_run, engine_kind=self.config.engine_kind,
            rules_files=[str(p) for p in self.ruleset.files],
            rule_count=self.ruleset.rule_count, events=self.metrics.n_evts,
            processed=self.metrics.processed, alerts=self.alerts, drops=self.metrics.n_drops,
            output_drops=out.dropped if out else 0, reloads=self.metrics.reloads_ok,
            reload_failures=self.metrics.reloads_failed, seconds=seconds,
            plugins=dict(self._plugin_versions),
            warnings=list(self.config.warnings) + list(self.ruleset.warnings),
        )

    def run(self) -> RunResult:
        """Run until the sources end or a stop is requested; release everything."""
        start = time.monotonic()
        with self._early_lock:
            if self._outputs is None:
                self._outputs = build_outputs(self.config)
            for alert in self._early_alerts:
                self._outputs.emit(alert)
            self._early_alerts.clear()
        self.metrics.outputs = self._outputs.stats
        saved_signals = self._install_signals()
        # The event loop is CPU-bound; with Python's default 5 ms switch interval the output,
        # reload and web threads wait up to 5 ms for the interpreter lock at every blocking
        # call and starve (measured: a file output wrote 18% of 60k alerts/s). 1 ms lets them
        # keep up, at a cost only while they have work.
        saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(saved_interval, SWITCH_INTERVAL))
        capture = None
        tracker = self._tracker
        threads: list[threading.Thread] = []
        try:
            syscall_source = self._syscall_source()
            plugin_sources = [(cfg, p) for cfg, p in self.plugins.sources().values()]
            if syscall_source is None and not plugin_sources:
                raise DetectorError(
                    f"engine.kind {self.config.engine_kind} with no plugin event source: "
                    "nothing to read events from",
                    hint="load a plugin with event sourcing (load_plugins, plugins), or use "
                         "engine.kind ebpf or replay")
            if syscall_source is not None:
                self.sources.append(syscall_source)
                if tracker is None and self.config.engine_kind == "ebpf":
                    from detector.state.tracker import StateTracker

                    tracker = StateTracker()
                    tracker.scan()
            if self._capture_path is not None:
                from detector.sources.capture import CaptureWriter

                capture = CaptureWriter(str(self._capture_path))
            self._start_services()
            self.ready.set()
            streams: list[tuple[Iterable[Event | None], Any, Any]] = []
            if syscall_source is not None:
                # the tracker's stream applies state and adds Falco's ``container`` events
                stream = tracker.stream(syscall_source) if hasattr(tracker, "stream") else None
                streams.append((stream, None, capture) if stream is not None
                               else (syscall_source, tracker, capture))
            for cfg, plugin in plugin_sources:
                streams.append((self._plugin_events(plugin, cfg.open_params), None, None))
            if len(streams) > 1:
                self._lock = threading.Lock()
            errors: list[BaseException] = []

            def drive(stream: Iterable[Event | None], trk: Any, cap: Any) -> None:
                try:
                    self._loop(stream, trk, cap)
                except BaseException as err:
                    errors.append(err)
                    self.stop()

            for stream, trk, cap in streams[1:]:
                t = threading.Thread(target=drive, args=(stream, trk, cap), daemon=True,
                                     name="source-plugin")
                t.start()
                threads.append(t)
            self._loop(*streams[0])
            for t in threads:
                while t.is_alive() and not self._stopping.is_set():
                    t.join(0.2)
            if errors:
                raise errors[0]
        finally:
            self._stopping.set()
            for t in threads:
                t.join(2)
            self._shutdown(capture, tracker, saved_signals)
            sys.setswitchinterval(saved_interval)
        return self._result(dry_run=False, seconds=time.monotonic() - start)

    def _shutdown(self, capture: Any, tracker: Any, saved: list[tuple[int, Any]]) -> None:
        for sig, handler in saved:
            signal.signal(sig, handler)
        self._stop_services()
        self._drops.update(self.sources, check_drops=False)
        for s in self.sources:
            close = getattr(s, "close", None)
            if callable(close):
                close()
        if capture is not None:
            capture.close()
        if tracker is not None and hasattr(tracker, "close"):
            tracker.close()
        if self._outputs is not None:
            self._outputs.close(float(self.config.get("output_timeout", 2000)) / 1000)
        if self.webserver is not None:
            self.webserver.stop()
        self.plugins.destroy()

