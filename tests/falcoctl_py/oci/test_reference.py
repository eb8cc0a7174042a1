"""Parsing full references, tags, digests and ranges."""

from __future__ import annotations

import pytest

from falcoctl_py.errors import UsageError
from falcoctl_py.oci.reference import Reference, is_range, looks_full, parse_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ghcr.io/falcosecurity/rules/falco-rules",
            Reference("ghcr.io", "falcosecurity/rules/falco-rules"),
        ),
        ("ghcr.io/a/b:3", Reference("ghcr.io", "a/b", tag="3")),
        ("127.0.0.1:5000/a/b:1.2.3", Reference("127.0.0.1:5000", "a/b", tag="1.2.3")),
        (f"localhost:5000/a@{DIGEST}", Reference("localhost:5000", "a", digest=DIGEST)),
        ("ghcr.io/a/b:^5", Reference("ghcr.io", "a/b", range="^5")),
        ("ghcr.io/a/b:>=4,<6", Reference("ghcr.io", "a/b", range=">=4,<6")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_str_and_target() -> None:
    assert str(Reference("h:1", "a/b")) == "h:1/a/b:latest"
    assert Reference("h:1", "a/b").target == "latest"
    assert str(Reference("h", "a", digest=DIGEST)) == f"h/a@{DIGEST}"
    assert str(Reference("h", "a", range="~5.1")) == "h/a:~5.1"


@pytest.mark.parametrize(
    "text", ["ghcr.io/A/B:1", "ghcr.io/a:bad tag!", "ghcr.io/a@sha256:xyz", "nohost"]
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


def test_range_detection() -> None:
    assert is_range("^5") and is_range("~5.1") and is_range(">=4,<6")
    assert not is_range("5") and not is_range("latest") and not is_range("5.1.0")
    assert looks_full("ghcr.io/x") and not looks_full("falco-rules:5")
