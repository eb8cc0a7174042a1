"""``http_output``: one POST per alert (Falco's JSON accepted by Falcosidekick), with retries.

The client comes from the project's one httpx factory (falcoctl_py.http), which also keeps
httpx's per-request lines out of the log unless it is at DEBUG and redacts URL credentials.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from detector.outputs.base import Sink
from falcoctl_py.errors import ConfigError
from falcoctl_py.http import make_client, redact_url

if TYPE_CHECKING:
    from detector.config import HttpOutput

log = logging.getLogger("detector.outputs")


def make_http_client(
    *, insecure: bool = False, ca_cert: str = "", ca_bundle: str = "", ca_path: str = "",
    client_cert: str = "", client_key: str = "", mtls: bool = False, user_agent: str,
    timeout: float = 5.0,
) -> httpx.Client:
    """An httpx client for the output (the project's one factory): verification on unless
    ``insecure``, optional mTLS."""
    return make_client(
        insecure_skip_tls_verify=insecure,
        extra_ca_files=tuple(b for b in (ca_cert, ca_bundle) if b and Path(b).is_file()),
        ca_path=ca_path if ca_path and Path(ca_path).is_dir() and ca_path != "/etc/ssl/certs"
        else "",
        client_cert=client_cert if mtls else "",
        client_key=client_key if mtls else "",
        user_agent=user_agent,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
    )


def http_sink(h: HttpOutput, *, json_output: bool) -> HttpSink:
    """The sink ``http_output`` describes; its TLS set-up checked now, to fail at start."""
    client_options: dict[str, Any] = {
        "insecure": h.insecure, "ca_cert": h.ca_cert, "ca_bundle": h.ca_bundle,
        "ca_path": h.ca_path, "client_cert": h.client_cert, "client_key": h.client_key,
        "mtls": h.mtls, "user_agent": h.user_agent, "timeout": h.timeout,
    }
    try:  # made here once to fail early; the output's child process makes its own
        make_http_client(**client_options).close()
    except (OSError, ValueError) as err:
        raise ConfigError(f"http_output: cannot set up TLS: {err}",
                          hint="check ca_cert, client_cert and client_key") from err
    return HttpSink(h.url, json_output=json_output, client_options=client_options,
                    retries=h.retries, max_consecutive_timeouts=h.max_consecutive_timeouts,
                    echo=h.echo)


class HttpSink(Sink):
    """POSTs each alert; retries transport errors and 5xx with a short backoff.

    ``client_options`` are make_http_client's keyword arguments: the client is made on first
    use, in the process that sends (the output's child process).
    """

    name = "http"
    out_of_process = True

    def __init__(self, url: str, *, json_output: bool, client_options: dict[str, Any] | None = None,
                 retries: int = 3, max_consecutive_timeouts: int = 5, echo: bool = False) -> None:
        self.url = url
        self.json_output = json_output
        self.client_options = dict(client_options or {})
        self.client_options.setdefault("user_agent", "falcosecurity/falco")
        self._client: httpx.Client | None = None
        self.retries = max(0, retries)
        self.max_consecutive_timeouts = max_consecutive_timeouts
        self.echo = echo
        self.content_type = "application/json" if json_output else "text/plain"
        self.consecutive_timeouts = 0

    def settings(self) -> dict[str, Any]:
        return {"url": self.url, "json_output": self.json_output,
                "client_options": self.client_options, "retries": self.retries,
                "max_consecutive_timeouts": self.max_consecutive_timeouts, "echo": self.echo}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = make_http_client(**self.client_options)
        return self._client

    def write(self, line: str, alert: Any) -> None:
        last: Exception | None = None
        attempts = self.retries + 1
        if self.max_consecutive_timeouts and self.consecutive_timeouts >= \
                self.max_consecutive_timeouts:
            attempts = 1  # the receiver is down: do not stall the queue on every alert
        for attempt in range(attempts):
            try:
                resp = self.client.post(self.url, content=line.encode(),
                                        headers={"Content-Type": self.content_type})
                self.consecutive_timeouts = 0
                if resp.status_code < 500:
                    if resp.status_code >= 400:
                        raise RuntimeError(f"{redact_url(self.url)} answered {resp.status_code}")
                    if self.echo:
                        log.info("http output response: %s", resp.text)
                    return
                last = RuntimeError(f"{redact_url(self.url)} answered {resp.status_code}")
            except httpx.TimeoutException as err:
                self.consecutive_timeouts += 1
                last = err
            except httpx.TransportError as err:
                last = err
            if attempt + 1 < attempts:
                time.sleep(min(0.1 * 2**attempt, 2.0))
        raise RuntimeError(
            f"POST {redact_url(self.url)} failed after {attempts} attempts: {last}"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
