"""``artifact install|info|config|manifest`` end to end through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.push import push_artifact
from tests.falcoctl_py.artifact_helpers import write_config, write_index
from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import Registry


@pytest.fixture
def setup(registry: Registry, tmp_path: Path, isolated_home: Path) -> tuple[Registry, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app_rules.yaml").write_text(
        "- required_plugin_versions:\n  - name: json\n    version: 0.7.0\n- list: a\n  items: []\n"
    )
    (src / "libjson.so").write_bytes(b"\x7fELF json")
    with RegistryClient(plain_http=True) as client:
        push_artifact(
            client=client,
            ref=registry.ref("rules/app-rules", "1.2.0"),
            files=[src / "app_rules.yaml"],
            artifact_type="rulesfile",
            version="1.2.0",
            add_floating_tags=True,
        )
        push_artifact(
            client=client,
            ref=registry.ref("plugins/json", "0.7.2"),
            files=[src / "libjson.so"],
            artifact_type="plugin",
            version="0.7.2",
            platforms=["linux/amd64", "linux/arm64"][:1],
            add_floating_tags=True,
        )
        manifest = client.get_manifest(f"{registry.host}/rules/app-rules", "1.2.0")
        sig_tag = "sha256-" + manifest.digest.split(":")[1] + ".sig"
        client.push_manifest(
            f"{registry.host}/rules/app-rules", sig_tag, manifest.data, manifest.media_type
        )
    index = write_index(
        tmp_path / "index.yaml",
        registry,
        {"app-rules": ("rulesfile", "rules/app-rules"), "json": ("plugin", "plugins/json")},
    )
    return registry, write_config(tmp_path, index)


def _dirs(tmp: Path) -> list[str]:
    return [
        "--rulesfiles-dir",
        str(tmp / "rules"),
        "--plugins-dir",
        str(tmp / "plugins"),
        "--state-dir",
        str(tmp / "state"),
        "--platform",
        "linux/amd64",
        "--plain-http",
    ]


def test_install_json_and_repeat(
    setup: tuple[Registry, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = setup
    run = run_config(
        capsys, config, "artifact", "install", "app-rules:^1", *_dirs(tmp_path), "-o", "json",
    )
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert [(a["name"], a["version"], a["status"]) for a in result["artifacts"]] == [
        ("json", "0.7.2", "installed"),
        ("app-rules", "1.2.0", "installed"),
    ]
    assert (tmp_path / "plugins" / "libjson.so").read_bytes() == b"\x7fELF json"
    run = run_config(capsys, config, "artifact", "install", "app-rules:^1", *_dirs(tmp_path))
    assert run.code == 0, run.stderr
    assert "up-to-date: app-rules:1.2.0" in run.stderr


def test_env_and_flag_layering(
    setup: tuple[Registry, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, config = setup
    monkeypatch.setenv("FALCOCTL_ARTIFACT_INSTALL_RULESFILESDIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("FALCOCTL_ARTIFACT_INSTALL_REFS", "app-rules:1.2.0")
    monkeypatch.setenv("FALCOCTL_ARTIFACT_INSTALL_RESOLVEDEPS", "false")
    run = run_config(
        capsys, config, "artifact", "install", "--plain-http", "--state-dir",
        str(tmp_path / "state"),
    )
    assert run.code == 0, run.stderr
    assert (tmp_path / "from-env" / "app_rules.yaml").exists()
    assert not (tmp_path / "plugins").exists()
    run = run_config(
        capsys, config, "artifact", "install", "--plain-http", "--state-dir",
        str(tmp_path / "state2"), "--rulesfiles-dir", str(tmp_path / "from-flag"),
        "--allowed-types", "rulesfile",
    )
    assert run.code == 0, run.stderr
    assert (tmp_path / "from-flag" / "app_rules.yaml").exists()


def test_install_errors_are_one_line(
    setup: tuple[Registry, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = setup
    run = run_config(capsys, config, "artifact", "install", "nope:1", *_dirs(tmp_path))
    assert run.code == 1
    assert (
        run.stderr.count("\n") == 1
        and "cannot find nope among the configured indexes" in run.stderr
    )
    run = run_config(capsys, config, "artifact", "install", "app-rules:9.0.0", *_dirs(tmp_path))
    assert run.code == 1 and "not found" in run.stderr
    run = run_config(
        capsys, config, "artifact", "install", "app-rules:1", "--allowed-types", "plugin",
        *_dirs(tmp_path),
    )
    assert run.code == 2 and "not allowed" in run.stderr
    assert not (tmp_path / "rules").exists() or not any((tmp_path / "rules").iterdir())


def test_info_hides_signature_tags(
    setup: tuple[Registry, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = setup
    run = run_config(capsys, config, "artifact", "info", "app-rules", "--plain-http", "-o", "json")
    assert run.code == 0, run.stderr
    [info] = json.loads(run.stdout)
    assert sorted(info["tags"]) == ["1", "1.2", "1.2.0"]
    run = run_config(capsys, config, "artifact", "info", "app-rules", "--plain-http")
    assert "REF" in run.stdout and "1.2.0" in run.stdout and ".sig" not in run.stdout


def test_config_and_manifest(
    setup: tuple[Registry, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    registry, config = setup
    run = run_config(capsys, config, "artifact", "config", "app-rules:1", "--plain-http")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["dependencies"] == [{"name": "json", "version": "0.7.0"}]
    run = run_config(
        capsys, config, "artifact", "manifest", registry.ref("plugins/json", "0.7.2"), "--platform",
        "linux/amd64", "--plain-http",
    )
    assert run.code == 0, run.stderr
    manifest = json.loads(run.stdout)
    assert manifest["layers"][0]["mediaType"] == "application/vnd.cncf.falco.plugin.layer.v1+tar.gz"
    run = run_config(
        capsys, config, "artifact", "manifest", "json:0", "--platform", "linux/s390x",
        "--plain-http",
    )
    assert run.code == 1 and "no manifest for platform linux/s390x" in run.stderr


def test_install_update_config_lists_what_was_installed(
    setup: tuple[Registry, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = setup
    falco_yaml = tmp_path / "falco.yaml"
    falco_yaml.write_text(
        "# my falco config\nrules_files:\n  - /etc/falco/falco_rules.yaml  # upstream\n"
        "json_output: true\n"
    )
    run = run_config(
        capsys, config, "artifact", "install", "app-rules:^1", *_dirs(tmp_path), "--update-config",
        str(falco_yaml),
    )
    assert run.code == 0, run.stderr
    text = falco_yaml.read_text()
    assert "# my falco config" in text and "# upstream" in text  # comments kept
    doc = yaml.safe_load(text)
    assert doc["rules_files"] == [
        "/etc/falco/falco_rules.yaml", str(tmp_path / "rules" / "app_rules.yaml")
    ]
    assert doc["load_plugins"] == ["json"]
    assert doc["plugins"][0]["name"] == "json"
    assert doc["plugins"][0]["library_path"] == str(tmp_path / "plugins" / "libjson.so")
    assert doc["json_output"] is True


def test_install_update_config_refuses_a_broken_file_before_installing(
    setup: tuple[Registry, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = setup
    falco_yaml = tmp_path / "falco.yaml"
    falco_yaml.write_text("rules_files: [unclosed\n")
    run = run_config(
        capsys, config, "artifact", "install", "app-rules:^1", *_dirs(tmp_path), "--update-config",
        str(falco_yaml),
    )
    assert run.code == 1
    assert "falco.yaml" in run.stderr and "not valid YAML" in run.stderr
    assert not (tmp_path / "rules").exists()  # nothing installed
    assert falco_yaml.read_text() == "rules_files: [unclosed\n"


def test_install_update_config_writes_absolute_paths(
    setup: tuple[Registry, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, config = setup
    monkeypatch.chdir(tmp_path)
    (tmp_path / "falco.yaml").write_text("rules_files: []\n")
    run = run_config(
        capsys, config, "artifact", "install", "app-rules:^1", "--plain-http",
        "--platform", "linux/amd64", "--rulesfiles-dir", "rel-rules", "--plugins-dir",
        "rel-plugins", "--state-dir", "rel-state", "--update-config", "falco.yaml",
    )
    assert run.code == 0, run.stderr
    doc = yaml.safe_load((tmp_path / "falco.yaml").read_text())
    assert doc["rules_files"] == [str(tmp_path / "rel-rules" / "app_rules.yaml")]
    assert doc["plugins"][0]["library_path"] == str(tmp_path / "rel-plugins" / "libjson.so")
