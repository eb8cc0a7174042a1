"""Small real HTTP servers for auth tests: an OAuth2 token endpoint and a registry front that
answers ``/v2/`` with a Bearer challenge (docker distribution's token flow)."""

from __future__ import annotations

import base64
import http.server
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.falcoctl_py.oci.hostile import serving


@dataclass
class AuthServer:
    """A running server: its base URL and the requests it saw (path, headers, body)."""

    url: str
    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)


def _basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)


@contextmanager
def auth_server(
    *, client_id: str = "cid", client_secret: str = "csecret", user: str = "alice",
    password: str = "s3cret", body_style_only: bool = False,
) -> Iterator[AuthServer]:
    """``POST /token`` (client credentials), ``GET /v2/`` (Bearer challenge), ``GET /auth``
    (docker token service, Basic user/password). Over 60 lines by its nested request handler
    (one endpoint a branch)."""
    state = AuthServer(url="")
    issued: set[str] = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _send(self, code: int, body: dict[str, object] | None = None,
                  headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            state.requests.append((self.path, dict(self.headers), body))
            form = dict(urllib.parse.parse_qsl(body))
            creds = None if body_style_only else _basic(self.headers.get("Authorization", ""))
            if creds is None and "client_id" in form:
                creds = (form["client_id"], form.get("client_secret", ""))
            if (self.path != "/token" or form.get("grant_type") != "client_credentials"
                    or creds != (client_id, client_secret)):
                self._send(401, {"error": "invalid_client"})
                return
            token = f"tok-{len(issued)}"
            issued.add(token)
            self._send(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                             "scope": form.get("scope", "")})

        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers), ""))
            auth = self.headers.get("Authorization", "")
            if self.path.startswith("/auth"):
                if _basic(auth) != (user, password):
                    self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                token = f"reg-{len(issued)}"
                issued.add(token)
                self._send(200, {"token": token, "expires_in": 300})
                return
            if self.path == "/v2/":
                if auth.startswith("Bearer ") and auth[7:] in issued:
                    self._send(200, {}, {"Docker-Distribution-API-Version": "registry/2.0"})
                    return
                challenge = f'Bearer realm="{state.url}/auth",service="test-registry"'
                self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]},
                           {"WWW-Authenticate": challenge})
                return
            self._send(404)

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state
