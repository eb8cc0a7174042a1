"""Where alerts go: the outputs once they run; before that (an internal alert raised while the
detector starts) they wait and are sent when the outputs exist."""

from __future__ import annotations

import threading

from detector.outputs import Outputs
from detector.outputs.format import AlertLike, internal_alert


class AlertRouter:
    """Hands alerts to the outputs; holds early ones until :meth:`attach`."""

    def __init__(self, *, iso: bool) -> None:
        self.iso = iso
        self.outputs: Outputs | None = None
        self._early: list[AlertLike] = []
        self._lock = threading.Lock()

    def attach(self, outputs: Outputs) -> None:
        """Start sending to ``outputs`` (early alerts first)."""
        with self._lock:
            self.outputs = outputs
            for alert in self._early:
                outputs.emit(alert)
            self._early.clear()

    def emit(self, alert: AlertLike) -> None:
        outputs = self.outputs
        if outputs is not None:
            outputs.emit(alert)
            return
        with self._lock:
            if self.outputs is None:
                self._early.append(alert)
                return
        self.outputs.emit(alert)

    def internal(self, rule: str, priority: str, message: str,
                 fields: dict[str, object] | None = None) -> None:
        """A Falco internal alert (source ``internal``)."""
        self.emit(internal_alert(rule, priority, message, fields, iso=self.iso))
