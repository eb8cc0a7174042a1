"""Alert outputs: stdout, file, syslog, http and program, each behind its own bounded queue.

stdout and file run on a worker thread each; http, syslog and program run in a child process
each (detector.outputs.child), fed through a pipe, so they never take the detector's GIL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from detector.outputs.base import DEFAULT_CAPACITY, QueuedSink, Sink, SinkStats
from detector.outputs.format import AlertLike, FormatOptions, render
from detector.outputs.process import ProcessSink

log = logging.getLogger("detector.outputs")

__all__ = ["Outputs", "OutputsStats", "Sink", "build_outputs"]


@dataclass(slots=True)
class OutputsStats:
    """Totals over every sink."""

    alerts: int
    dropped: int
    sinks: list[SinkStats]


class Outputs:
    """Formats an alert once and hands the line to every sink's queue without blocking."""

    def __init__(self, sinks: list[Sink], *, options: FormatOptions,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.options = options
        self.queues: list[QueuedSink | ProcessSink] = []
        try:
            for s in sinks:
                self.queues.append(ProcessSink(s) if s.out_of_process
                                   else QueuedSink(s, capacity))
        except BaseException:
            self.close(0.0)
            raise
        self.alerts = 0

    def emit(self, alert: AlertLike) -> None:
        line = render(alert, self.options)
        self.alerts += 1
        for q in self.queues:
            q.put(line, alert)

    def reopen(self) -> None:
        for q in self.queues:
            q.request_reopen()

    def stats(self) -> OutputsStats:
        sinks = [q.snapshot() for q in self.queues]
        return OutputsStats(alerts=self.alerts, dropped=sum(s.dropped for s in sinks),
                            sinks=sinks)

    def close(self, timeout: float = 2.0) -> None:
        """Let every sink deliver what is queued for up to ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        for q in self.queues:
            q.stop()
        for q in self.queues:
            q.join(deadline - time.monotonic())


def build_outputs(config: Any) -> Outputs:
    """The sinks falco.yaml enables (``config`` is a detector.config.FalcoConfig)."""
    from detector.outputs.file import FileSink
    from detector.outputs.program import ProgramSink
    from detector.outputs.stdout import StdoutSink
    from detector.outputs.syslog import SyslogSink

    buffered = config.flag("buffered_outputs")
    sinks: list[Sink] = []
    if config.flag("stdout_output.enabled", True):
        sinks.append(StdoutSink(buffered=buffered))
    if config.flag("file_output.enabled"):
        sinks.append(FileSink(str(config.get("file_output.filename", "./events.txt")),
                              keep_alive=config.flag("file_output.keep_alive"),
                              buffered=buffered))
    if config.flag("syslog_output.enabled"):
        sinks.append(SyslogSink(str(config.get("syslog_output.address", "/dev/log")),
                                facility=int(config.get("syslog_output.facility", 1))))
    if config.flag("http_output.enabled") and config.get("http_output.url"):
        from detector.outputs.http import HttpSink, make_http_client
        from falcoctl_py.errors import ConfigError

        h = config.get("http_output", {})
        client_options: dict[str, Any] = {
            "insecure": bool(h.get("insecure")), "ca_cert": str(h.get("ca_cert") or ""),
            "ca_bundle": str(h.get("ca_bundle") or ""), "ca_path": str(h.get("ca_path") or ""),
            "client_cert": str(h.get("client_cert") or ""),
            "client_key": str(h.get("client_key") or ""), "mtls": bool(h.get("mtls")),
            "user_agent": str(h.get("user_agent") or "falcosecurity/falco"),
            "timeout": float(h.get("timeout") or 5.0),
        }
        try:  # made here once to fail early; the output's child process makes its own
            make_http_client(**client_options).close()
        except (OSError, ValueError) as err:
            raise ConfigError(f"http_output: cannot set up TLS: {err}",
                              hint="check ca_cert, client_cert and client_key") from err
        sinks.append(HttpSink(str(h["url"]), json_output=config.flag("json_output"),
                              client_options=client_options, retries=int(h.get("retries", 3)),
                              max_consecutive_timeouts=int(h.get("max_consecutive_timeouts", 5)),
                              echo=bool(h.get("echo"))))
    if config.flag("program_output.enabled") and config.get("program_output.program"):
        sinks.append(ProgramSink(str(config.get("program_output.program")),
                                 keep_alive=config.flag("program_output.keep_alive"),
                                 buffered=buffered))
    options = FormatOptions(
        json_output=config.flag("json_output"),
        include_output=config.flag("json_include_output_property", True),
        include_tags=config.flag("json_include_tags_property", True),
        include_output_fields=config.flag("json_include_output_fields_property", True),
        include_message=config.flag("json_include_message_property"),
    )
    return Outputs(sinks, options=options,
                   capacity=int(config.get("outputs_queue.capacity", 0)) or DEFAULT_CAPACITY)
