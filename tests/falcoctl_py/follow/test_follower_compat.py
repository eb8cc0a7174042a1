"""Follow and Falco's versions: incompatible updates skipped, plugin requirements, no source."""

from __future__ import annotations

import logging
import threading

import pytest

from falcoctl_py.follow.compat import read_versions
from tests.falcoctl_py.follow_helpers import (
    DETECTOR,
    RULE_V1,
    RULE_V2,
    FollowEnv,
    VersionsServer,
    rules,
)
from tests.realparts import free_port


def test_incompatible_update_is_skipped_once_and_not_refetched(
    env: FollowEnv, detector: VersionsServer, caplog: pytest.LogCaptureFixture
) -> None:
    env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
    follower = env.follower("app-rules", versions=lambda: read_versions(detector.url))
    assert follower.tick()[0].status == "updated"
    env.push(
        "app-rules", "2.0.0", {"app_rules.yaml": RULE_V2}, requires=["engine_version_semver:0.99.0"]
    )
    caplog.set_level(logging.WARNING, "falcoctl_py.follow.follower")
    first = follower.tick()[0]
    assert first.status == "skipped"
    assert "engine_version_semver" in first.message and "0.63.0" in first.message
    blobs = env.client.stats.blob_gets
    for _ in range(3):
        again = follower.tick()[0]
        assert (again.status, again.requests) == ("skipped", 1)
    assert env.client.stats.blob_gets == blobs  # no config or layer downloaded again
    assert rules(env) == RULE_V1  # the old files stay
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 1
    # the detector is upgraded: the same digest is re-checked (no download) and installed
    detector.versions = {**DETECTOR, "engine_version_semver": "0.99.1"}
    assert follower.tick()[0].status == "updated"
    assert rules(env) == RULE_V2


def test_no_versions_source_means_no_requirement_checks(env: FollowEnv) -> None:
    """``--falco-versions ""``: nothing to check requirements against, so they are not checked."""
    env.push(
        "app-rules", "2.0.0", {"app_rules.yaml": RULE_V2}, requires=["engine_version_semver:0.99.0"]
    )
    follower = env.follower("app-rules")
    assert follower.tick()[0].status == "updated"
    assert rules(env) == RULE_V2


def test_rules_needing_a_newer_loaded_plugin_are_skipped(
    env: FollowEnv, detector: VersionsServer
) -> None:
    env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
    follower = env.follower("app-rules", versions=lambda: read_versions(detector.url))
    follower.tick()
    env.push("app-rules", "1.1.0", {"app_rules.yaml": RULE_V2}, depends_on=["container:1.0.0"])
    result = follower.tick()[0]
    assert result.status == "skipped"
    assert "plugin container" in result.message and "0.7.1" in result.message
    assert rules(env) == RULE_V1


def test_unreachable_versions_at_start_waits_then_installs(env: FollowEnv) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/versions"
    env.push(
        "app-rules", "1.0.0", {"app_rules.yaml": RULE_V1}, requires=["plugin_api_version:3.0.0"]
    )
    env.push("other-rules", "1.0.0", {"other_rules.yaml": RULE_V1})
    follower = env.follower("app-rules", "other-rules", versions=lambda: read_versions(url))
    assert follower.watcher is not None
    stop = threading.Event()
    follower.watcher.start(stop)
    try:
        results = follower.tick()
        # following goes on: the artifact without requirements is installed, the other waits
        assert [r.status for r in results] == ["waiting", "updated"]
        server = VersionsServer(port=port)
        try:
            assert follower.watcher.ready.wait(10)
            assert [r.status for r in follower.tick()] == ["updated", "unchanged"]
        finally:
            server.stop()
    finally:
        stop.set()
    assert rules(env) == RULE_V1
