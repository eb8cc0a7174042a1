"""Alert receivers for the output tests: real sockets and servers."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class HttpReceiver:
    """An HTTP server recording POSTs; ``fail_first`` answers 503 that many times; ``gate``
    makes every request wait until it is set."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_first: int = 0
    gate: threading.Event | None = None
    attempts: int = 0
    got: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    rec = HttpReceiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.attempts += 1
            if rec.gate is not None:
                rec.gate.wait(30)
            if rec.fail_first > 0:
                rec.fail_first -= 1
                self.send_response(503)
                self.end_headers()
                return
            rec.bodies.append(body)
            rec.headers.append(dict(self.headers))
            rec.got.set()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield rec
    finally:
        if rec.gate is not None:
            rec.gate.set()
        server.shutdown()
        server.server_close()
