"""The follower's test environment: a real registry and a /versions server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.falcoctl_py.follow_helpers import FollowEnv, VersionsServer
from tests.realparts import Registry


@pytest.fixture
def env(registry: Registry, tmp_path: Path) -> Iterator[FollowEnv]:
    e = FollowEnv(registry, tmp_path)
    yield e
    e.close()


@pytest.fixture
def detector() -> Iterator[VersionsServer]:
    server = VersionsServer()
    yield server
    server.stop()
