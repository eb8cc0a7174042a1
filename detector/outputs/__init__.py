"""Alert outputs: stdout, file, syslog, http and program, each behind its own bounded queue.

stdout and file run on a worker thread each; http, syslog and program run in a child process
each (detector.outputs.child), fed through a pipe, so they never take the detector's GIL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detector.outputs.base import DEFAULT_CAPACITY, QueuedSink, Sink, SinkStats
from detector.outputs.format import AlertLike, FormatOptions, render
from detector.outputs.process import ProcessSink

if TYPE_CHECKING:
    from detector.config import FalcoConfig

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


def build_outputs(config: FalcoConfig) -> Outputs:
    """The sinks falco.yaml enables."""
    from detector.outputs.file import FileSink
    from detector.outputs.program import ProgramSink
    from detector.outputs.stdout import StdoutSink
    from detector.outputs.syslog import SyslogSink

    buffered = config.buffered_outputs
    sinks: list[Sink] = []
    if config.stdout_output.enabled:
        sinks.append(StdoutSink(buffered=buffered))
    f = config.file_output
    if f.enabled:
        sinks.append(FileSink(f.filename, keep_alive=f.keep_alive, buffered=buffered))
    if config.syslog_output.enabled:
        sinks.append(SyslogSink(config.syslog_output.address,
                                facility=config.syslog_output.facility))
    if config.http_output.enabled and config.http_output.url:
        from detector.outputs.http import http_sink

        sinks.append(http_sink(config.http_output, json_output=config.json_output))
    p = config.program_output
    if p.enabled and p.program:
        sinks.append(ProgramSink(p.program, keep_alive=p.keep_alive, buffered=buffered))
    options = FormatOptions(
        json_output=config.json_output,
        include_output=config.json_include_output_property,
        include_tags=config.json_include_tags_property,
        include_output_fields=config.json_include_output_fields_property,
        include_message=config.json_include_message_property,
    )
    return Outputs(sinks, options=options,
                   capacity=config.outputs_queue.capacity or DEFAULT_CAPACITY)
