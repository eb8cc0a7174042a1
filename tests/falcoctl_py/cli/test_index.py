"""``falcoctl-py index add|list|remove|update`` against a real HTTP index server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import FileServer

INDEX = "- name: falco-rules\n  type: rulesfile\n  registry: ghcr.io\n  repository: o/r\n"


@pytest.fixture
def config(isolated_home: Path) -> Path:
    path = isolated_home / "etc" / "falcoctl.yaml"
    path.parent.mkdir()
    path.write_text("indexes: []\n")
    return path


def test_add_list_update_remove(
    capsys: pytest.CaptureFixture[str], config: Path, file_server: FileServer
) -> None:
    (file_server.root / "index.yaml").write_text(INDEX)
    url = f"{file_server.url}/index.yaml"
    run = run_config(capsys, config, "index", "add", "mine", url)
    assert run.code == 0, run.stderr
    assert "Index 'mine' added (1 artifacts)" in run.stderr and run.stdout == ""

    run = run_config(capsys, config, "index", "list")
    header, row = run.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "URL", "ADDED", "UPDATED"]
    assert row.split()[:2] == ["mine", url]

    run = run_config(capsys, config, "index", "ls", "-o", "json")
    [item] = json.loads(run.stdout)
    assert (item["name"], item["url"], item["configured"], item["cached"]) == (
        "mine", url, True, True)

    assert run_config(capsys, config, "index", "update", "mine").code == 0
    run = run_config(capsys, config, "index", "rm", "mine")
    assert run.code == 0 and "Index 'mine' removed." in run.stderr
    assert yaml.safe_load(config.read_text())["indexes"] == []
    assert json.loads(run_config(capsys, config, "index", "list", "-o", "json").stdout) == []


def test_add_same_name_new_url_updates(
    capsys: pytest.CaptureFixture[str], config: Path, file_server: FileServer
) -> None:
    for name in ("a.yaml", "b.yaml"):
        (file_server.root / name).write_text(INDEX)
        run = run_config(capsys, config, "index", "add", "mine", f"{file_server.url}/{name}")
        assert run.code == 0
    assert f"now points to {file_server.url}/b.yaml (was {file_server.url}/a.yaml)" in run.stderr
    [entry] = yaml.safe_load(config.read_text())["indexes"]
    assert entry["url"] == f"{file_server.url}/b.yaml"


def test_malformed_index_one_line_error_nothing_written(
    capsys: pytest.CaptureFixture[str], config: Path, file_server: FileServer,
    isolated_home: Path,
) -> None:
    (file_server.root / "index.yaml").write_text(INDEX + "- name: [broken\n")
    before = config.read_text()
    run = run_config(capsys, config, "index", "add", "bad", f"{file_server.url}/index.yaml")
    assert run.code == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and run.stderr.endswith(errors[0] + "\n")  # one line, last
    assert errors[0].startswith(f"Error: {file_server.url}/index.yaml:6: invalid YAML")
    assert config.read_text() == before
    assert not (isolated_home / ".config" / "falcoctl").exists()


def test_remove_unknown_index_fails(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    run = run_config(capsys, config, "index", "remove", "ghost")
    assert run.code == 1 and "no index named 'ghost'" in run.stderr


def test_list_shows_env_indexes(
    capsys: pytest.CaptureFixture[str], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALCOCTL_INDEXES", "fromenv,https://example.org/index.yaml")
    run = run_config(capsys, config, "index", "list", "-o", "json")
    assert [i["name"] for i in json.loads(run.stdout)] == ["fromenv"]
