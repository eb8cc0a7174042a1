"""Fixtures of the artifact tests: a registry client and an install environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoctl_py.oci.client import RegistryClient
from tests.falcoctl_py.artifact.install_parts import Env
from tests.realparts import Registry


@pytest.fixture
def client() -> Iterator[RegistryClient]:
    with RegistryClient(plain_http=True, backoff=0.01, max_retries=1) as c:
        yield c


@pytest.fixture
def env(registry: Registry, client: RegistryClient, tmp_path: Path) -> Env:
    return Env(registry, client, tmp_path)


