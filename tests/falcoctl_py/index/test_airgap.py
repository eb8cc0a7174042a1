"""An air-gapped host (issue 11): the default index unreachable with no cached copy, a local
file index beside it. Commands warn naming the unreachable index and go on with the others;
they fail only for an artifact found nowhere, naming the unreachable index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.push import push_artifact
from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import Registry, free_port


@pytest.fixture
def airgapped(registry: Registry, tmp_path: Path, isolated_home: Path) -> Path:
    rules = tmp_path / "local_rules.yaml"
    rules.write_text("- list: local_list\n  items: [a]\n")
    with RegistryClient(plain_http=True) as client:
        for version in ("1.10.0", "1.2.0", "1.9.1"):
            push_artifact(client=client, ref=registry.ref("mirror/local-rules", version),
                          files=[rules], artifact_type="rulesfile", version=version)
    index = tmp_path / "local-index.yaml"
    index.write_text(yaml.safe_dump([{
        "name": "local-rules", "type": "rulesfile", "registry": registry.host,
        "repository": "mirror/local-rules", "keywords": ["local"],
    }]))
    config = tmp_path / "falcoctl.yaml"
    config.write_text(yaml.safe_dump({"indexes": [
        # the default index's name, at an address nothing answers (no network here)
        {"name": "falcosecurity", "url": f"https://127.0.0.1:{free_port()}/index.yaml",
         "backend": "https"},
        {"name": "local", "url": f"file://{index}", "backend": "file"},
    ]}))
    return config


def _warns_about_default(stderr: str) -> None:
    assert "falcosecurity" in stderr and "unreachable" in stderr and "Traceback" not in stderr


def test_install_from_the_local_index_when_the_default_is_unreachable(
    capsys: pytest.CaptureFixture[str], airgapped: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "rules"
    run = run_config(capsys, airgapped, "artifact", "install", "local-rules:1.10.0",
                     "--plain-http", "--rulesfiles-dir", str(dest),
                     "--state-dir", str(tmp_path / "state"))
    assert run.code == 0, run.stderr
    _warns_about_default(run.stderr)
    assert (dest / "local_rules.yaml").read_text().startswith("- list: local_list")


def test_an_artifact_found_nowhere_names_the_unreachable_index(
    capsys: pytest.CaptureFixture[str], airgapped: Path, tmp_path: Path
) -> None:
    run = run_config(capsys, airgapped, "artifact", "install", "falco-rules:3", "--plain-http",
                     "--rulesfiles-dir", str(tmp_path / "rules"),
                     "--state-dir", str(tmp_path / "state"))
    assert run.code == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "cannot find falco-rules" in errors[0]
    assert "index falcosecurity could not be fetched" in errors[0]


def test_search_list_info_and_update_go_on_with_the_other_indexes(
    capsys: pytest.CaptureFixture[str], airgapped: Path
) -> None:
    run = run_config(capsys, airgapped, "artifact", "search", "local", "-o", "json")
    assert run.code == 0 and [h["name"] for h in json.loads(run.stdout)] == ["local-rules"]
    _warns_about_default(run.stderr)
    run = run_config(capsys, airgapped, "artifact", "search", "local", "--index", "local",
                     "-o", "json")
    assert run.code == 0 and "falcosecurity" not in run.stderr  # only the named index is read
    run = run_config(capsys, airgapped, "artifact", "list")
    assert run.code == 0 and "local-rules" in run.stdout
    run = run_config(capsys, airgapped, "artifact", "info", "local-rules", "--plain-http",
                     "-o", "json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)[0]["tags"] == ["1.2.0", "1.9.1", "1.10.0"]  # version order
    run = run_config(capsys, airgapped, "index", "update")
    assert run.code == 0, run.stderr
    assert "falcosecurity could not be updated" in run.stderr and "'local' updated" in run.stderr
