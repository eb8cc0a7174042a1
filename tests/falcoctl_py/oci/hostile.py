"""A scriptable hostile HTTP server on loopback that records every request it sees.

Real registries cannot be made to send cross-host pagination links, endless pages, redirects to
another origin or token replies without a token: this server does, so the tests can assert
which requests carried credentials.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """One request: method, path (with query) and the Authorization header ('' when none)."""

    method: str
    path: str
    authorization: str


@dataclass
class Hostile:
    """A running server: its ``host:port``, base URL and the requests it saw."""

    host: str
    url: str
    seen: list[Seen] = field(default_factory=list)

    def with_credentials(self) -> list[Seen]:
        return [s for s in self.seen if s.authorization]


Answer = Callable[["Hostile", str, str, dict[str, str]], Reply]


@contextmanager
def hostile_server(answer: Answer) -> Iterator[Hostile]:
    """Serve ``answer(server, method, path, headers) -> (status, headers, body)``."""
    state = Hostile(host="", url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _answer(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append(Seen(self.command, self.path, headers.get("authorization", "")))
            length = int(headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            code, extra, body = answer(state, self.command, self.path, headers)
            self.send_response(code)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = _answer

    with serving(Handler) as port:
        state.host = f"127.0.0.1:{port}"
        state.url = f"http://{state.host}"
        yield state


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on a loopback port (yielded) in a thread, until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
