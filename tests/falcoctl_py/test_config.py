"""falcoctl.yaml, FALCOCTL_* variables and their layering."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from falcoctl_py.config import (
    BasicAuth,
    IndexRef,
    OAuthClient,
    add_gcp_registry,
    load_config,
    parse_duration,
    pick,
    read_file_indexes,
    save_indexes,
)
from falcoctl_py.errors import ConfigError, FalcoctlPyError

FILE = """\
indexes:
  - {name: one, url: https://example.org/one.yaml, backend: https}
registry:
  creds: {config: /srv/creds.json}
  auth:
    basic: [{registry: myreg:5000, user: u, password: p}]
    oauth: [{registry: myreg:5001, clientSecret: s, clientID: c, tokenURL: http://t/token}]
    gcp: [{registry: europe-docker.pkg.dev}]
artifact:
  allowedTypes: [rulesfile, plugin]
  noVerify: true
  install:
    refs: [falco-rules:5]
    resolveDeps: false
    RulesfilesDir: /srv/rules
    pluginsDir: /srv/plugins
    assetsDir: /srv/assets
    stateDir: /srv/state
  follow:
    refs: [falco-rules:5, k8saudit]
    every: 1h30m
    startupBehavior: immediate
    falcoVersions: http://falco:8765/versions
    tmpDir: /srv/tmp
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_missing_file_is_created_with_defaults_and_private_dir(isolated_home: Path) -> None:
    path = isolated_home / "etc" / "falcoctl" / "falcoctl.yaml"
    config = load_config(path, create=True)
    assert path.exists()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [i.name for i in config.indexes] == ["falcosecurity"]
    assert config.indexes[0].url == "https://falcosecurity.github.io/falcoctl/index.yaml"
    assert config.artifact.install.rulesfiles_dir == Path("/etc/falco")
    assert config.artifact.install.plugins_dir == Path("/usr/share/falco/plugins")
    assert config.artifact.install.assets_dir == Path("/etc/falco/assets")
    assert config.artifact.install.state_dir == Path("/var/lib/falcoctl")
    assert config.artifact.install.resolve_deps is True
    assert config.artifact.follow.every == "6h"
    assert config.artifact.follow.every_seconds == 6 * 3600
    assert config.registry.creds_config == isolated_home / ".docker" / "config.json"
    assert config.driver["type"] == ["modern_ebpf", "kmod"]
    assert load_config(path) == config  # the created file reads back the same


def test_a_missing_file_reads_as_the_defaults_it_would_be_created_with(
    isolated_home: Path,
) -> None:
    path = isolated_home / "no" / "dir" / "none.yaml"
    config = load_config(path)
    assert not (isolated_home / "no").exists()  # reading creates nothing
    assert config == load_config(path, create=True)  # the same as the created defaults
    assert [i.name for i in config.indexes] == ["falcosecurity"]


def test_file_values_with_case_insensitive_keys(isolated_home: Path) -> None:
    config = load_config(write(isolated_home / "f.yaml", FILE))
    assert config.indexes == [IndexRef("one", "https://example.org/one.yaml", "https")]
    assert config.registry.creds_config == Path("/srv/creds.json")
    assert config.registry.auth_basic == [BasicAuth("myreg:5000", "u", "p")]
    assert config.registry.auth_oauth == [OAuthClient("myreg:5001", "c", "s", "http://t/token")]
    assert config.registry.auth_gcp == ["europe-docker.pkg.dev"]
    art = config.artifact
    assert art.allowed_types == ["rulesfile", "plugin"] and art.no_verify is True
    assert art.install.refs == ["falco-rules:5"] and art.install.resolve_deps is False
    assert art.install.rulesfiles_dir == Path("/srv/rules")  # RulesfilesDir: any case
    assert art.install.assets_dir == Path("/srv/assets")
    assert art.follow.refs == ["falco-rules:5", "k8saudit"]
    assert art.follow.every_seconds == 5400
    assert art.follow.startup_behavior == "immediate"
    assert art.follow.tmp_dir == Path("/srv/tmp")


def test_env_list_encodings(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "FALCOCTL_INDEXES": "a,https://a.example/index.yaml;b,file:///srv/b.yaml",
        "FALCOCTL_REGISTRY_AUTH_BASIC": "r1:5000,alice,pa,ss;ghcr.io/org/repo:1,bob,pw",
        "FALCOCTL_REGISTRY_AUTH_OAUTH": "r2,cid,csecret,http://t/token",
        "FALCOCTL_REGISTRY_AUTH_GCP": "g1;g2",
        "FALCOCTL_REGISTRY_CREDS_CONFIG": "/env/creds.json",
        "FALCOCTL_ARTIFACT_INSTALL_REFS": "falco-rules:5;k8saudit-rules:0.1",
        "FALCOCTL_ARTIFACT_FOLLOW_REFS": "falco-rules:5",
        "FALCOCTL_ARTIFACT_ALLOWEDTYPES": "rulesfile,plugin",
        "FALCOCTL_ARTIFACT_NOVERIFY": "true",
        "FALCOCTL_ARTIFACT_INSTALL_RESOLVEDEPS": "false",
        "FALCOCTL_ARTIFACT_FOLLOW_EVERY": "30m",
        "FALCOCTL_DRIVER_TYPE": "kmod;modern_ebpf",
    }
    config = load_config(write(isolated_home / "f.yaml", FILE), env=env)
    assert [(i.name, i.url) for i in config.indexes] == [
        ("a", "https://a.example/index.yaml"), ("b", "file:///srv/b.yaml")]
    # the password keeps its commas; a registry may be given as a reference
    assert config.registry.auth_basic == [
        BasicAuth("r1:5000", "alice", "pa,ss"), BasicAuth("ghcr.io/org/repo:1", "bob", "pw")]
    assert config.registry.auth_oauth == [OAuthClient("r2", "cid", "csecret", "http://t/token")]
    assert config.registry.auth_gcp == ["g1", "g2"]
    assert config.registry.creds_config == Path("/env/creds.json")
    assert config.artifact.install.refs == ["falco-rules:5", "k8saudit-rules:0.1"]
    assert config.artifact.follow.refs == ["falco-rules:5"]
    assert config.artifact.allowed_types == ["rulesfile", "plugin"]
    assert config.artifact.no_verify is True
    assert config.artifact.install.resolve_deps is False
    assert config.artifact.follow.every == "30m"
    assert config.driver["type"] == ["kmod", "modern_ebpf"]


def test_env_beats_file_and_flag_beats_env(isolated_home: Path) -> None:
    path = write(isolated_home / "f.yaml", FILE)
    from_file = load_config(path, env={})
    from_env = load_config(path, env={"FALCOCTL_ARTIFACT_INSTALL_RULESFILESDIR": "/env/rules"})
    assert from_file.artifact.install.rulesfiles_dir == Path("/srv/rules")
    assert from_env.artifact.install.rulesfiles_dir == Path("/env/rules")
    flag = Path("/flag/rules")
    assert pick(flag, True, from_env.artifact.install.rulesfiles_dir) == flag
    assert pick(flag, False, from_env.artifact.install.rulesfiles_dir) == Path("/env/rules")


def test_empty_env_variable_counts_as_unset(isolated_home: Path) -> None:
    config = load_config(write(isolated_home / "f.yaml", FILE),
                         env={"FALCOCTL_ARTIFACT_INSTALL_REFS": ""})
    assert config.artifact.install.refs == ["falco-rules:5"]


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("FALCOCTL_ARTIFACT_ALLOWEDTYPES", "rulesfile,,plugin", "comma-separated"),
        ("FALCOCTL_ARTIFACT_ALLOWEDTYPES", "rulesfile,driver", "unknown type 'driver'"),
        ("FALCOCTL_ARTIFACT_INSTALL_REFS", "a;;b", "semicolon-separated"),
        ("FALCOCTL_INDEXES", "only-a-name", "name,url"),
        ("FALCOCTL_ARTIFACT_NOVERIFY", "maybe", "true or false"),
        ("FALCOCTL_ARTIFACT_FOLLOW_EVERY", "6 hours", "invalid duration"),
        ("FALCOCTL_REGISTRY_AUTH_OAUTH", "r,c,s", "registry,clientID"),
    ],
)
def test_malformed_env_is_a_config_error(
    isolated_home: Path, name: str, value: str, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(write(isolated_home / "f.yaml", FILE), env={name: value})


def test_malformed_file_names_path_and_line(isolated_home: Path) -> None:
    path = write(isolated_home / "f.yaml", "indexes:\n  - name: a\n    url: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:" in str(err.value)
    assert "invalid YAML" in str(err.value)


def test_secrets_stay_out_of_repr(isolated_home: Path) -> None:
    config = load_config(write(isolated_home / "f.yaml", FILE),
                         env={"FALCOCTL_REGISTRY_AUTH_BASIC": "r,u,topsecret"})
    assert "topsecret" not in repr(config)
    assert "'s'" not in repr(config.registry.auth_oauth)


def test_docker_config_env_is_honoured_when_unset_in_file(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_home / "dockercfg"))
    config = load_config(isolated_home / "f.yaml")
    assert config.registry.creds_config == isolated_home / "dockercfg" / "config.json"


def test_save_indexes_keeps_other_keys_and_mode(isolated_home: Path) -> None:
    path = write(isolated_home / "f.yaml", FILE)
    os.chmod(path, 0o600)
    save_indexes(path, [IndexRef("two", "file:///srv/two.yaml", "file")])
    data = yaml.safe_load(path.read_text())
    assert data["indexes"] == [{"name": "two", "url": "file:///srv/two.yaml", "backend": "file"}]
    assert data["artifact"]["install"]["refs"] == ["falco-rules:5"]
    assert data["artifact"]["install"]["RulesfilesDir"] == "/srv/rules"  # spelling kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["f.yaml"]  # no temporary left behind
    assert read_file_indexes(path) == [IndexRef("two", "file:///srv/two.yaml", "file")]


def test_file_indexes_ignore_the_environment(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(isolated_home / "f.yaml", FILE)
    monkeypatch.setenv("FALCOCTL_INDEXES", "env,https://env.example/index.yaml")
    assert [i.name for i in read_file_indexes(path)] == ["one"]
    assert [i.name for i in load_config(path).indexes] == ["env"]


def test_add_gcp_registry_once(isolated_home: Path) -> None:
    path = write(isolated_home / "f.yaml", FILE)
    add_gcp_registry(path, "us-docker.pkg.dev")
    add_gcp_registry(path, "us-docker.pkg.dev")
    assert load_config(path, env={}).registry.auth_gcp == [
        "europe-docker.pkg.dev", "us-docker.pkg.dev"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("168h", 604800.0), ("1h30m", 5400.0), ("45s", 45.0), ("500ms", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "6", "h", "1d", "6h 30m", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("registry: {auth: {gcp: 5}}", "registry.auth.gcp must be a list"),
        ("artifact: [1]", "artifact must be a mapping"),
        ("registry: 5", "registry must be a mapping"),
        ("artifact: {follow: 5}", "artifact.follow must be a mapping"),
        ("registry: {creds: {config: [1]}}", "registry.creds.config must be a string"),
        ("artifact: {follow: {tmpdir: [1]}}", "tmpDir must be a string"),
        ("driver: {type: {a: 1}}", "driver.type must be a list of strings"),
        ("a: &a [*a]", "recursive YAML alias"),
        ("x: " + "[" * 5000, "nested more than"),
        ("artifact: {follow: {every: 99999999999999999999999h}}", "longer than 292 years"),
    ],
)
def test_mistyped_or_hostile_config_is_one_line_naming_the_file(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "falcoctl.yaml"
    path.write_text(text)
    with pytest.raises(FalcoctlPyError) as err:
        load_config(path, env={})
    line = err.value.one_line()
    assert needle in line and str(path) in line and "\n" not in line
