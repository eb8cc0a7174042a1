"""Requirement and plugin-version checks against a detector's /versions; the background watcher."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from falcoctl_py.errors import NetworkError
from falcoctl_py.follow.compat import (
    VersionsWatcher,
    check_compatibility,
    needs_versions,
    read_versions,
)
from falcoctl_py.oci.media import ArtifactConfig, ArtifactType, Dependency, Requirement
from tests.falcoctl_py.follow_helpers import DETECTOR, VersionsServer
from tests.realparts import free_port


def config(reqs: dict[str, str] = {}, deps: list[Dependency] = []) -> ArtifactConfig:  # noqa: B006
    return ArtifactConfig(
        name="x",
        version="1.0.0",
        requirements=tuple(Requirement(k, v) for k, v in reqs.items()),
        dependencies=tuple(deps),
    )


@pytest.mark.parametrize(
    ("reqs", "problem"),
    [
        ({"engine_version_semver": "0.57.0"}, None),
        ({"engine_version_semver": "0.63.0"}, None),
        ({"engine_version_semver": "0.64.0"}, "needs 0.64.0 or newer"),
        ({"plugin_api_version": "3.0.0"}, None),
        ({"plugin_api_version": "4.0.0"}, "MAJOR mismatch"),
        ({"plugin_api_version": "2.9.0"}, "MAJOR mismatch"),
        ({"engine_version": "26"}, None),  # legacy integer compare
        ({"engine_version": "70"}, "needs 70"),
        ({"k8s_api": "1.0.0"}, "does not report it"),
    ],
)
def test_requirements(reqs: dict[str, str], problem: str | None) -> None:
    got = check_compatibility(config(reqs), ArtifactType.rulesfile, DETECTOR)
    if problem is None:
        assert got == []
    else:
        assert len(got) == 1 and problem in got[0]


def test_rules_dependencies_against_loaded_plugins() -> None:
    rules = ArtifactType.rulesfile
    ok = config(deps=[Dependency("container", "0.4.0")])
    assert check_compatibility(ok, rules, DETECTOR) == []
    newer = config(deps=[Dependency("container", "0.8.0")])
    (problem,) = check_compatibility(newer, rules, DETECTOR)
    assert "plugin container" in problem and "0.7.1" in problem
    alt = config(deps=[Dependency("k8saudit", "0.1.0", (Dependency("container", "0.5.0"),))])
    assert check_compatibility(alt, rules, DETECTOR) == []
    not_loaded = config(deps=[Dependency("json", "0.7.0")])  # resolution installs it
    assert check_compatibility(not_loaded, rules, DETECTOR) == []
    # a plugin's dependencies are not rules-to-plugin requirements
    assert check_compatibility(newer, ArtifactType.plugin, DETECTOR) == []
    assert needs_versions(newer, rules) and not needs_versions(config(), rules)


def test_read_versions_from_url_and_file(tmp_path: Path) -> None:
    server = VersionsServer()
    try:
        assert read_versions(server.url)["plugin_versions"] == {"container": "0.7.1"}
    finally:
        server.stop()
    path = tmp_path / "versions.json"
    path.write_text(json.dumps(DETECTOR))
    assert read_versions(str(path)) == DETECTOR
    assert read_versions(f"file://{path}") == DETECTOR
    with pytest.raises(NetworkError, match="cannot read the detector's versions"):
        read_versions(f"http://127.0.0.1:{free_port()}/versions", timeout=2)


def test_watcher_retries_in_background_until_the_detector_answers() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/versions"
    ready = threading.Event()
    watcher = VersionsWatcher(
        lambda: read_versions(url, timeout=1), first_delay=0.05, on_ready=ready.set
    )
    stop = threading.Event()
    watcher.start(stop)  # returns at once although nothing listens
    try:
        assert watcher.get() is None
        server = VersionsServer(port=port)
        try:
            assert ready.wait(10)
            assert watcher.get() == DETECTOR
        finally:
            server.stop()
        assert watcher.refresh() == DETECTOR  # the last value is kept when it goes away
    finally:
        stop.set()
