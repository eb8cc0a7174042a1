"""The one HTTP client factory, URL redaction and origins."""

from __future__ import annotations

from pathlib import Path

import pytest

import detector
import falcoctl_py
from falcoctl_py.http import redact_text, redact_url, same_origin


def test_make_client_is_the_only_httpx_client_factory() -> None:
    factory = Path(falcoctl_py.__file__).parent / "http.py"
    roots = [factory.parent, Path(detector.__file__).parent]
    makers = [str(p) for root in roots for p in root.rglob("*.py")
              if p != factory and "httpx.Client(" in p.read_text()]
    assert makers == []


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:p@h/i.yaml", "https://***@h/i.yaml"),
        ("GET http://reader:s3cret@127.0.0.1:8/x \"200\"", "GET http://***@127.0.0.1:8/x \"200\""),
        ("no url here", "no url here"),
        ("file:///srv/index.yaml", "file:///srv/index.yaml"),
    ],
)
def test_credentials_in_urls_are_redacted(text: str, shown: str) -> None:
    assert redact_text(text) == shown
    if text.startswith(("http", "file")):
        assert redact_url(text) == shown
    assert redact_url("http://[bad") == "http://[bad"  # not splittable: no crash


def test_same_origin_compares_scheme_host_and_port() -> None:
    assert same_origin("https://r.example/v2/a", "https://r.example:443/v2/b")
    assert not same_origin("https://r.example/v2/", "http://r.example/v2/")
    assert not same_origin("http://127.0.0.1:5000/", "http://127.0.0.1:5001/")
    assert not same_origin("http://127.0.0.1:5000/", "http://localhost:5000/")

