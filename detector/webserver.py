"""The web endpoints: /healthz, /versions (Falco's shape) and /metrics (Prometheus text)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from falcoctl_py.errors import DetectorError

log = logging.getLogger("detector.webserver")

DEFAULT_PORT = 8765


@dataclass(slots=True)
class WebEndpoints:
    """What the server answers: the versions object (fixed at start) and a metrics callable."""

    versions: dict[str, Any]
    metrics: Callable[[], str] | None
    healthz_path: str = "/healthz"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webserver: " + format, *args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        ep = self.server.endpoints
        path = self.path.split("?", 1)[0]
        if path == ep.healthz_path:
            self._send(200, b'{"status": "ok"}', "application/json")
        elif path == "/versions":
            self._send(200, json.dumps(ep.versions).encode(), "application/json")
        elif path == "/metrics" and ep.metrics is not None:
            self._send(200, ep.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain")

    do_HEAD = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoints: WebEndpoints


class WebServer:
    """A stdlib HTTP server in a thread."""

    def __init__(self, endpoints: WebEndpoints, *, address: str = "0.0.0.0",
                 port: int = DEFAULT_PORT, ssl_certificate: str | None = None) -> None:
        try:
            self._server = _Server((address, port), _Handler)
        except OSError as err:
            raise DetectorError(f"webserver: cannot listen on {address}:{port}: {err.strerror}",
                                hint="set webserver.listen_port, or webserver.enabled=false"
                                ) from err
        self._server.endpoints = endpoints
        if ssl_certificate:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(ssl_certificate)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="webserver",
                                        daemon=True)

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
