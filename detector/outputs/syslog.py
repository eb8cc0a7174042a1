"""``syslog_output``: RFC 3164 datagrams to /dev/log (unix) or host:port (UDP), facility user."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from detector.outputs.base import Sink
from detector.outputs.format import priority_level

LOG_USER = 1


class SyslogSink(Sink):
    """Sends ``<PRI>Mmm dd hh:mm:ss falco[pid]: line`` with severity = Falco's priority 0..7."""

    name = "syslog"
    out_of_process = True

    def __init__(self, address: str = "/dev/log", *, facility: int = LOG_USER,
                 ident: str = "falco", pid: int = 0) -> None:
        self.address = address
        self.facility = facility
        self.ident = ident
        self.pid = pid or os.getpid()  # the detector's, also when sent from a child process
        self._sock: socket.socket | None = None

    def settings(self) -> dict[str, Any]:
        return {"address": self.address, "facility": self.facility, "ident": self.ident,
                "pid": self.pid}

    def _connect(self) -> socket.socket:
        if self.address.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.connect(self.address)
        else:
            host, _, port = self.address.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET,
                                 socket.SOCK_DGRAM)
            sock.connect((host.strip("[]") or "127.0.0.1", int(port or 514)))
        return sock

    def write(self, line: str, alert: Any) -> None:
        pri = self.facility * 8 + priority_level(alert.priority)
        stamp = time.strftime("%b %d %H:%M:%S")
        data = f"<{pri}>{stamp} {self.ident}[{self.pid}]: {line}".encode()
        if self._sock is None:
            self._sock = self._connect()
        try:
            self._sock.send(data)
        except OSError:
            self.close()
            self._sock = self._connect()
            self._sock.send(data)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
