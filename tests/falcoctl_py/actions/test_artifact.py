"""The adapter between the layered config and the core: type lists, signature tags, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoctl_py.actions.artifact import (
    SIGNATURE_TAG_RE,
    index_lookup,
    load,
    parse_allowed_types,
)
from falcoctl_py.errors import UsageError
from tests.falcoctl_py.artifact_helpers import write_config, write_index
from tests.realparts import Registry


def test_allowed_types_split_and_checked(tmp_path: Path, isolated_home: Path) -> None:
    config = load(write_config(tmp_path, tmp_path / "index.yaml", allowedTypes=["plugin"]))
    got = parse_allowed_types(["rulesfile,plugin", "asset"], config)
    assert got == ["rulesfile", "plugin", "asset"]
    with pytest.raises(UsageError, match="unknown artifact type 'rules'"):
        parse_allowed_types(["rules"], config)
    assert parse_allowed_types(None, config) == ["plugin"]  # no flag: the config's


def test_signature_tags_recognised() -> None:
    digest = "a" * 64
    assert SIGNATURE_TAG_RE.match(f"sha256-{digest}.sig")
    assert SIGNATURE_TAG_RE.match(f"sha256-{digest}")
    assert not SIGNATURE_TAG_RE.match("5.0.0") and not SIGNATURE_TAG_RE.match("sig")


def test_index_lookup_is_lazy(registry: Registry, tmp_path: Path, isolated_home: Path) -> None:
    index = tmp_path / "index.yaml"
    config = load(write_config(tmp_path, index))
    lookup = index_lookup(config)  # the index file does not exist yet: nothing is read
    write_index(index, registry, {"falco-rules": ("rulesfile", "rules/falco-rules")})
    entry = lookup("falco-rules")
    assert entry.registry == registry.host and entry.repository == "rules/falco-rules"
    assert lookup("nope") is None
