"""The web endpoints: /healthz, /versions (Falco's shape) and /metrics (Prometheus text).

One asyncio loop in one thread serves every connection, so an idle or slow client costs a small
coroutine, not a thread: each connection has a read timeout for its request head, the head is
bounded in size, the listen backlog is real and the number of open connections is capped (over
the cap a connection is closed at once). A client that goes away is logged once at debug level,
without a traceback. The detection loop never waits for this thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from falcoctl_py.errors import DetectorError

log = logging.getLogger("detector.webserver")

DEFAULT_PORT = 8765
BACKLOG = 1024
MAX_CONNECTIONS = 4096
READ_TIMEOUT = 5.0  # seconds for a client to send its request head
MAX_HEAD = 8192  # bytes of request line and headers
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large"}


@dataclass(slots=True)
class WebEndpoints:
    """What the server answers: the versions object (fixed at start) and a metrics callable."""

    versions: dict[str, Any]
    metrics: Callable[[], str] | None
    healthz_path: str = "/healthz"


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's bounds (tests lower them)."""

    backlog: int = BACKLOG
    max_connections: int = MAX_CONNECTIONS
    read_timeout: float = READ_TIMEOUT
    max_head: int = MAX_HEAD


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Errors asyncio reports about a connection: one debug line, no traceback."""
    del loop
    log.debug("webserver: %s (%s)", context.get("message"), context.get("exception"))


class WebServer:
    """An asyncio HTTP/1.0 server for the three endpoints, in its own thread."""

    def __init__(self, endpoints: WebEndpoints, *, address: str = "0.0.0.0",
                 port: int = DEFAULT_PORT, ssl_certificate: str | None = None,
                 limits: Limits | None = None) -> None:
        self.endpoints = endpoints
        self.limits = limits or Limits()
        self.open_connections = 0
        self._ssl: ssl.SSLContext | None = None
        if ssl_certificate:
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(ssl_certificate)
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._serve, address, port, backlog=self.limits.backlog, ssl=self._ssl,
                limit=self.limits.max_head, reuse_address=True,
                ssl_handshake_timeout=self.limits.read_timeout if self._ssl else None))
        except OSError as err:
            self._loop.close()
            raise DetectorError(f"webserver: cannot listen on {address}:{port}: {err.strerror}",
                                hint="set webserver.listen_port, or webserver.enabled=false"
                                ) from err
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._thread = threading.Thread(target=self._loop.run_forever, name="webserver",
                                        daemon=True)

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close the open connections and end the thread."""
        async def _close() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        else:
            self._loop.run_until_complete(_close())
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read one request head (bounded in time and size), answer, close."""
        if self.open_connections >= self.limits.max_connections:
            writer.transport.abort()
            return
        self.open_connections += 1
        peer = writer.get_extra_info("peername")
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                          timeout=self.limits.read_timeout)
            code, ctype, body, method = self._answer(head)
            await self._write(writer, code, ctype, body, head_only=method == "HEAD")
        except TimeoutError:
            log.debug("webserver: %s sent no request in %.0fs; closed", peer,
                      self.limits.read_timeout)
        except asyncio.LimitOverrunError:
            await self._write(writer, 431, "text/plain", b"request head too large\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError) as err:
            log.debug("webserver: %s went away: %s", peer, type(err).__name__)
        finally:
            self.open_connections -= 1
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, str, bytes, str]:
        """Status, content type, body and method for a request head."""
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request\n", ""
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n", method
        ep = self.endpoints
        if target == ep.healthz_path:
            return 200, "application/json", b'{"status": "ok"}', method
        if target == "/versions":
            return 200, "application/json", json.dumps(ep.versions).encode(), method
        if target == "/metrics" and ep.metrics is not None:
            return (200, "text/plain; version=0.0.4; charset=utf-8", ep.metrics().encode(),
                    method)
        return 404, "text/plain", b"not found\n", method

    async def _write(self, writer: asyncio.StreamWriter, code: int, ctype: str, body: bytes,
                     *, head_only: bool = False) -> None:
        """Send a whole response; the connection closes after it (HTTP/1.0 style)."""
        head = (f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head if head_only else head + body)
        await asyncio.wait_for(writer.drain(), timeout=self.limits.read_timeout)
