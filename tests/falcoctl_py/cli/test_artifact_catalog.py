"""``falcoctl-py artifact search`` and ``artifact list`` over indexes served by real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import FileServer

MAIN = """\
- name: falco-rules
  type: rulesfile
  registry: ghcr.io
  repository: falcosecurity/rules/falco-rules
  keywords: [falco-rules]
- name: k8saudit
  type: plugin
  registry: ghcr.io
  repository: falcosecurity/plugins/plugin/k8saudit
  keywords: [audit, kubernetes]
- name: k8saudit-rules
  type: rulesfile
  registry: ghcr.io
  repository: falcosecurity/plugins/ruleset/k8saudit
  keywords: [audit, kubernetes]
"""
MINE = """\
- name: k8saudit
  type: plugin
  registry: registry.example:5000
  repository: mirror/k8saudit
  keywords: [audit]
"""


@pytest.fixture
def config(isolated_home: Path, file_server: FileServer) -> Path:
    (file_server.root / "main.yaml").write_text(MAIN)
    (file_server.root / "mine.yaml").write_text(MINE)
    path = isolated_home / "falcoctl.yaml"
    path.write_text(
        f"indexes:\n  - {{name: main, url: '{file_server.url}/main.yaml'}}\n"
        f"  - {{name: mine, url: '{file_server.url}/mine.yaml'}}\n"
    )
    return path


def table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.strip()]


def test_list_table_merges_indexes(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    run = run_config(capsys, config, "artifact", "list")
    assert run.code == 0, run.stderr
    assert table(run.stdout) == [
        ["INDEX", "ARTIFACT", "TYPE", "REGISTRY", "REPOSITORY"],
        ["main", "falco-rules", "rulesfile", "ghcr.io", "falcosecurity/rules/falco-rules"],
        ["mine", "k8saudit", "plugin", "registry.example:5000", "mirror/k8saudit"],
        ["main", "k8saudit-rules", "rulesfile", "ghcr.io",
         "falcosecurity/plugins/ruleset/k8saudit"],
    ]


def test_list_filters_and_json(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    run = run_config(
        capsys, config, "artifact", "ls", "--type", "rulesfile", "--index", "main", "-o", "json",
    )
    items = json.loads(run.stdout)
    assert [(i["name"], i["index"]) for i in items] == [
        ("falco-rules", "main"), ("k8saudit-rules", "main")]
    assert items[0]["repository"] == "falcosecurity/rules/falco-rules"
    run = run_config(capsys, config, "artifact", "list", "--index", "ghost")
    assert run.code == 1 and "no configured index named 'ghost'" in run.stderr


def test_search_scores_and_keywords(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    run = run_config(capsys, config, "artifact", "search", "k8saudit")
    # k8saudit-rules scores 8/14 < 0.65 and has no keyword containing "k8saudit"
    assert table(run.stdout)[1:] == [
        ["mine", "k8saudit", "plugin", "registry.example:5000", "mirror/k8saudit"]]
    run = run_config(capsys, config, "artifact", "search", "audit")
    assert [row[1] for row in table(run.stdout)[1:]] == ["k8saudit", "k8saudit-rules"]
    run = run_config(
        capsys, config, "artifact", "search", "kubernetes", "--type", "rulesfile", "-o", "json",
    )
    [hit] = json.loads(run.stdout)
    assert hit["name"] == "k8saudit-rules" and 0 <= hit["score"] < 0.65
    run = run_config(
        capsys, config, "artifact", "search", "falco", "--min-score", "0.4", "-o", "json",
    )
    assert [h["name"] for h in json.loads(run.stdout)] == ["falco-rules"]


def test_search_rejects_bad_min_score(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    run = run_config(capsys, config, "artifact", "search", "x", "--min-score", "0")
    assert run.code == 2 and "--min-score must be in (0, 1]" in run.stderr


def test_index_down_without_cache_is_a_warning_and_the_others_are_listed(
    capsys: pytest.CaptureFixture[str], config: Path, file_server: FileServer
) -> None:
    (file_server.root / "main.yaml").unlink()
    run = run_config(capsys, config, "artifact", "list")
    assert run.code == 0, run.stderr
    assert "index main is unreachable" in run.stderr and "main.yaml: HTTP 404" in run.stderr
    assert [row[1] for row in table(run.stdout)[1:]] == ["k8saudit"]
    (file_server.root / "mine.yaml").unlink()  # its cached copy is used from now on
    run = run_config(capsys, config, "artifact", "search", "audit")
    assert run.code == 0 and [row[1] for row in table(run.stdout)[1:]] == ["k8saudit"]
    run = run_config(capsys, config, "artifact", "list", "--index", "main")
    assert run.code == 1 and "no index could be read: index main could not be fetched" in (
        run.stderr)
