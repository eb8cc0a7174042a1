"""Shared fixtures: the real registry, an index file server, and a pinned CLI environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realparts import FileServer, Registry, start_file_server, start_registry


@pytest.fixture(autouse=True)
def _pinned_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output that does not depend on the developer's terminal."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A fresh docker-registry over plain HTTP on 127.0.0.1."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """Python's HTTP server serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    server = start_file_server(root)
    try:
        yield server
    finally:
        server.stop()
