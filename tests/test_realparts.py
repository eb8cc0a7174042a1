"""The real parts start: the registry answers the distribution API, the file server serves."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.realparts import FileServer, Registry


def test_registry_answers_v2(registry: Registry) -> None:
    resp = httpx.get(f"http://{registry.host}/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_file_server_serves(file_server: FileServer) -> None:
    (file_server.root / "index.yaml").write_text("- name: x\n")
    assert httpx.get(f"{file_server.url}/index.yaml").text == "- name: x\n"


def test_registry_restart_keeps_storage(registry: Registry, tmp_path: Path) -> None:
    registry.stop()
    registry.start()
    assert httpx.get(f"http://{registry.host}/v2/_catalog").json() == {"repositories": []}
