"""The one factory for HTTP clients (httpx): TLS verification on, proxies from the environment.

URLs may carry credentials (``https://user:pass@host/index.yaml``): :func:`redact_url` and
:func:`redact_text` hide them in messages, and one filter on httpx's and httpcore's own loggers
hides them in their lines and keeps those lines (one per request) out of the log unless the log
is at DEBUG: the only place that quiets httpx.
"""

from __future__ import annotations

import logging
import re
import ssl
import urllib.parse
from pathlib import Path

import httpx

from falcoctl_py import __version__

USER_AGENT = f"falcoctl-py/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"'<>]*@")


def redact_text(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


class RedactingFilter(logging.Filter):
    """httpx's and httpcore's records: below WARNING only when the log is at DEBUG (one line per
    request is noise otherwise), and with the credentials of URLs in them redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and not logging.getLogger().isEnabledFor(
            logging.DEBUG
        ):
            return False
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactingFilter()
_HTTP_LOGGERS = ("httpx", "httpcore")


def install_log_redaction() -> None:
    """Put the filter on httpx's and httpcore's loggers and their children (idempotent)."""
    names = [n for n in list(logging.root.manager.loggerDict)
             if n.partition(".")[0] in _HTTP_LOGGERS]
    for name in {*_HTTP_LOGGERS, *names}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def same_origin(a: str, b: str) -> bool:
    """True when two URLs have the same scheme, host and port (default ports filled in)."""
    ua, ub = httpx.URL(a), httpx.URL(b)
    return (ua.scheme, ua.host, _port(ua)) == (ub.scheme, ub.host, _port(ub))


def _port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def make_client(
    *,
    ca_file: Path | str | None = None,
    insecure_skip_tls_verify: bool = False,
    timeout: httpx.Timeout | float | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = True,
    extra_ca_files: tuple[str, ...] = (),
    ca_path: str = "",
    client_cert: str = "",
    client_key: str = "",
    user_agent: str = USER_AGENT,
) -> httpx.Client:
    """An httpx client: verification on unless asked, extra CAs (files or a directory) if
    given, a client certificate for mTLS, env proxies honoured; the only factory of the
    project (the registry client, indexes, logins, the detector's HTTP output)."""
    verify: ssl.SSLContext | bool
    if insecure_skip_tls_verify:
        verify = False
    else:
        verify = ssl.create_default_context()
        for bundle in (str(ca_file) if ca_file else "", *extra_ca_files):
            if bundle:
                verify.load_verify_locations(cafile=bundle)
        if ca_path:
            verify.load_verify_locations(capath=ca_path)
        if client_cert:
            verify.load_cert_chain(client_cert, client_key or None)
    client = httpx.Client(
        verify=verify,
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        headers={"User-Agent": user_agent, **(headers or {})},
        follow_redirects=follow_redirects,
        trust_env=True,
    )
    install_log_redaction()  # after the client: httpx imports httpcore (and its loggers) lazily
    return client


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced, fit for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not a URL we can split (a bad IPv6 host): redact by pattern
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
