"""The follower factory: flags over FALCOCTL_* over the config file; the embedding API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falcoctl_py.actions.follow import build_follower
from falcoctl_py.errors import UsageError
from falcoctl_py.follow.schedule import StartupBehavior
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.push import push_artifact
from tests.falcoctl_py.artifact_helpers import write_config, write_index
from tests.falcoctl_py.follow_helpers import DETECTOR
from tests.realparts import Registry


def test_layering_of_refs_schedule_and_dirs(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path,
        follow={"refs": ["h:1/a/b:latest"], "cron": "0 */6 * * *", "rulesfilesdir": "/x/rules"},
    )
    built = build_follower(config_path=config, falco_versions="")
    try:
        assert [f.text for f in built.followers] == ["h:1/a/b:latest"]
        assert built.schedule.cron is not None and built.schedule.every is None
        assert built.startup is StartupBehavior.jitter
        assert built.dirs.rulesfiles == Path("/x/rules")
        assert built.watcher is None  # an empty --falco-versions: no requirement checks
    finally:
        built.close()
    monkeypatch.setenv("FALCOCTL_ARTIFACT_FOLLOW_REFS", "h:1/c/d:1;h:1/e/f:^2")
    monkeypatch.setenv("FALCOCTL_ARTIFACT_FOLLOW_EVERY", "30m")
    plain = write_config(tmp_path)
    built = build_follower(config_path=plain, every="2h", startup_behavior="skip")
    try:
        assert [f.text for f in built.followers] == ["h:1/c/d:1", "h:1/e/f:^2"]
        assert built.schedule.every == 7200.0
        assert built.startup is StartupBehavior.skip
        assert built.watcher is not None  # the default http://localhost:8765/versions
    finally:
        built.close()
    built = build_follower(config_path=plain, refs=["h:1/z/z"])
    try:
        assert [f.text for f in built.followers] == ["h:1/z/z"]
        assert built.schedule.every == 1800.0  # from the environment
    finally:
        built.close()
    with pytest.raises(UsageError, match="cannot be used together"):
        build_follower(config_path=plain, every="1h", cron="@hourly")


def test_embedded_follower_reports_updates_to_the_runtime(
    registry: Registry, tmp_path: Path, isolated_home: Path
) -> None:
    src = tmp_path / "app_rules.yaml"
    src.write_text("- rule: embedded\n")
    with RegistryClient(plain_http=True) as client:
        push_artifact(
            client=client,
            ref=registry.ref("rules/app-rules", "1.0.0"),
            files=[src],
            artifact_type="rulesfile",
            version="1.0.0",
            tags=["latest"],
            requires=["engine_version_semver:0.50.0"],
        )
    index = write_index(
        tmp_path / "index.yaml", registry, {"app-rules": ("rulesfile", "rules/app-rules")}
    )
    config = write_config(tmp_path, index)
    updates: list[tuple[str, list[str], Any]] = []
    validated: list[str] = []
    from falcoctl_py.actions.artifact import TlsOptions

    follower = build_follower(
        config_path=config,
        refs=["app-rules"],
        versions=lambda: DETECTOR,  # the runtime passes its own versions, no HTTP
        rulesfiles_dir=tmp_path / "rules",
        state_dir=tmp_path / "state",
        tls=TlsOptions(plain_http=True),
        no_verify=True,
        on_update=lambda name, files, summary: updates.append((name, files, summary)),
        validate=lambda staged: validated.extend(p.read_text() for p in staged),
    )
    try:
        (result,) = follower.tick()
    finally:
        follower.close()
    assert result.status == "updated", result.message
    assert validated == ["- rule: embedded\n"]
    ((name, files, summary),) = updates
    assert name == "app-rules" and files == [str(tmp_path / "rules" / "app_rules.yaml")]
    assert summary.rules_added == ["embedded"]
