"""Shared fixtures: the real registry, an index file server, and a pinned CLI environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realparts import (
    Container,
    FileServer,
    PodmanService,
    Registry,
    start_file_server,
    start_registry,
)


@pytest.fixture(autouse=True)
def _pinned_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output that does not depend on the developer's terminal."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")


@pytest.fixture(autouse=True)
def _restored_logging() -> Iterator[None]:
    """Whatever a test does to the root logger (handlers, level) is undone after it."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary ``$HOME`` (per-user falcoctl files, Docker config), no FALCOCTL_* variables."""
    import os

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in list(os.environ):
        if name.startswith("FALCOCTL_") and name != "FALCOCTL_PY_REQUIRE_REAL":
            monkeypatch.delenv(name)
    return home


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


@pytest.fixture(scope="session")
def podman_container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """A running podman container (busybox image, ``sleep infinity``), removed at the end."""
    import os

    from tests.realparts import busybox_image, podman, start_container

    image = busybox_image(tmp_path_factory.mktemp("podman-image"))
    container = start_container(image, f"falcoctl-py-test-{os.getpid()}")
    try:
        yield container
    finally:
        container.remove()
        podman("rmi", image, check=False)  # refused while another session's container uses it


@pytest.fixture(scope="session")
def podman_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    """``podman system service`` on a temporary unix socket (the Docker-compatible API)."""
    from tests.realparts import need_root, start_podman_service

    need_root()
    service = start_podman_service(tmp_path_factory.mktemp("podman-api") / "podman.sock")
    try:
        yield service
    finally:
        service.stop()
