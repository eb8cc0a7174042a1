"""Falco's media types, the config JSON and manifest checks."""

from __future__ import annotations

import json

import pytest

from falcoctl_py.errors import IntegrityError, NotFoundError
from falcoctl_py.oci.media import (
    ArtifactConfig,
    ArtifactType,
    Dependency,
    Descriptor,
    Platform,
    Requirement,
    build_index,
    build_manifest,
    is_strict_semver,
    parse_artifact_manifest,
    select_platform,
)


def test_media_types_are_falcoctls() -> None:
    assert (
        ArtifactType.rulesfile.config_media_type
        == "application/vnd.cncf.falco.rulesfile.config.v1+json"
    )
    assert (
        ArtifactType.plugin.layer_media_type == "application/vnd.cncf.falco.plugin.layer.v1+tar.gz"
    )
    assert ArtifactType.asset.layer_media_type == "application/vnd.cncf.falco.asset.layer.v1+tar.gz"


def test_config_json_shape_and_round_trip() -> None:
    config = ArtifactConfig(
        name="k8saudit-rules",
        version="0.11.0",
        dependencies=(
            Dependency("k8saudit", "0.11.0", (Dependency("k8saudit-eks", "0.7.0"),)),
            Dependency("json", "0.7.0"),
        ),
        requirements=(Requirement("engine_version_semver", "0.26.0"),),
    )
    raw = config.to_bytes()
    assert json.loads(raw) == {
        "name": "k8saudit-rules",
        "version": "0.11.0",
        "dependencies": [
            {"name": "json", "version": "0.7.0"},
            {
                "name": "k8saudit",
                "version": "0.11.0",
                "alternatives": [{"name": "k8saudit-eks", "version": "0.7.0"}],
            },
        ],
        "requirements": [{"name": "engine_version_semver", "version": "0.26.0"}],
    }
    back = ArtifactConfig.from_bytes(raw)
    assert (
        back.name == "k8saudit-rules"
        and back.dependencies[1].alternatives[0].name == "k8saudit-eks"
    )


def test_manifest_checks_media_types() -> None:
    cfg = Descriptor(ArtifactType.rulesfile.config_media_type, "sha256:" + "1" * 64, 2)
    layer = Descriptor(
        ArtifactType.rulesfile.layer_media_type,
        "sha256:" + "2" * 64,
        3,
        {"org.opencontainers.image.title": "r.yaml.tar.gz"},
    )
    parsed = parse_artifact_manifest(build_manifest(cfg, layer, {}), where="x")
    assert parsed.artifact_type is ArtifactType.rulesfile and parsed.filename == "r.yaml.tar.gz"
    image_layer = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer.digest, 3)
    with pytest.raises(IntegrityError, match="unexpected layer media type"):
        parse_artifact_manifest(build_manifest(cfg, image_layer, {}), where="x")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        parse_artifact_manifest(b"<html>", where="x")


def test_platform_selection() -> None:
    amd = Descriptor("m", "sha256:" + "a" * 64, 1, platform=Platform("linux", "amd64"))
    arm = Descriptor("m", "sha256:" + "b" * 64, 1, platform=Platform("linux", "arm64"))
    index = build_index([amd, arm], {})
    assert select_platform(index, Platform.parse("linux/arm64"), where="i") == arm
    with pytest.raises(NotFoundError, match="available: linux/amd64, linux/arm64"):
        select_platform(index, Platform("darwin", "arm64"), where="i")


def test_strict_semver() -> None:
    assert is_strict_semver("1.2.3") and is_strict_semver("1.0.0-rc.1+b5")
    assert (
        not is_strict_semver("1.0") and not is_strict_semver("1") and not is_strict_semver("01.0.0")
    )
