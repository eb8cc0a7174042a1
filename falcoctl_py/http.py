"""The one factory for HTTP clients (httpx): TLS verification on, proxies from the environment."""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import httpx

from falcoctl_py import __version__

USER_AGENT = f"falcoctl-py/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def make_client(
    *,
    ca_file: Path | None = None,
    insecure_skip_tls_verify: bool = False,
    timeout: httpx.Timeout | float | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = True,
    ca_dir: Path | None = None,
    extra_ca_files: Sequence[Path] = (),
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> httpx.Client:
    """An httpx client: verification on unless asked, an extra CA if given, env proxies honoured.

    ``extra_ca_files`` and ``ca_dir`` add CA files and a folder of hashed CA certificates;
    ``client_cert``/``client_key`` give a client certificate (mutual TLS).
    """
    verify: ssl.SSLContext | bool
    if insecure_skip_tls_verify:
        verify = False
    else:
        verify = ssl.create_default_context()
        if ca_file is not None:
            verify.load_verify_locations(cafile=str(ca_file))
        for extra in extra_ca_files:
            verify.load_verify_locations(cafile=str(extra))
        if ca_dir is not None:
            verify.load_verify_locations(capath=str(ca_dir))
        if client_cert is not None:
            verify.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
    return httpx.Client(
        verify=verify,
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=follow_redirects,
        trust_env=True,
    )


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced, fit for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
