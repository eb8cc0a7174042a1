"""Fixtures shared by the artifact-manager tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.realparts import Registry, start_registry


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry with htpasswd basic auth (alice / s3cret), one per test module."""
    reg = start_registry(tmp_path_factory.mktemp("authreg"), htpasswd=("alice", "s3cret"))
    try:
        yield reg
    finally:
        reg.stop()
