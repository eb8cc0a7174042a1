"""Hostile OCI JSON and descriptors (issue 10, item 9): bounded parsing, typed fields, sizes
enforced while reading; from the CLI against the real registry."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from falcoctl_py.errors import FalcoctlPyError, IntegrityError
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import (
    OCI_MANIFEST,
    ArtifactConfig,
    Descriptor,
    build_manifest,
    parse_artifact_manifest,
)
from tests.falcoctl_py.artifact_helpers import visible, write_config
from tests.falcoctl_py.cli.clirun import run_config
from tests.falcoctl_py.oci.hostile import hostile_server
from tests.realparts import Registry

RULES_CONFIG = "application/vnd.cncf.falco.rulesfile.config.v1+json"
RULES_LAYER = "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "nested more than"),
        (b'{"version": ' + b"9" * 5000 + b"}", "number too large"),
        (b'{"dependencies": 5}', "'dependencies' must be a list"),
        (b'{"dependencies": [{"name": ["x"]}]}', "'name' must be a string"),
        (b'{"requirements": {"a": 1}}', "'requirements' must be a list"),
        (b'{"name": {"a": 1}}', "'name' must be a string"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_hostile_config_json_is_one_line_naming_the_input(config: bytes, needle: str) -> None:
    with pytest.raises(FalcoctlPyError) as err:
        ArtifactConfig.from_bytes(config, where="config of r/x:1")
    line = err.value.one_line()
    assert needle in line and "config of r/x:1" in line and "\n" not in line


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"annotations": ["a", "b"]}, "annotations must be a mapping"),
        ({"layers": [{"mediaType": RULES_LAYER, "digest": "sha256:0", "size": "12"}]},
         "valid digest and size"),
        ({"layers": [{"mediaType": RULES_LAYER, "digest": "sha256:0", "size": True}]},
         "valid digest and size"),
        ({"layers": [{"mediaType": RULES_LAYER, "digest": "sha256:0", "size": 1,
                      "annotations": {"t": 5}}]}, "annotations must be a mapping"),
        ({"mediaType": ["x"]}, "unexpected manifest media type"),
    ],
)
def test_hostile_manifest_json_is_one_line(change: dict[str, object], needle: str) -> None:
    cfg = Descriptor(RULES_CONFIG, "sha256:" + "1" * 64, 2)
    layer = Descriptor(RULES_LAYER, "sha256:" + "2" * 64, 10)
    raw = json.loads(build_manifest(cfg, layer, {}))
    raw.update(change)
    with pytest.raises(IntegrityError) as err:
        parse_artifact_manifest(json.dumps(raw).encode(), where="r/x:1")
    assert needle in err.value.one_line() and err.value.one_line().startswith("r/x:1")


def _tar_gz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(
        fileobj=gz, mode="w"
    ) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _push(registry: Registry, repo: str, config: bytes, layer: bytes, layer_size: int) -> str:
    name = f"{registry.host}/{repo}"
    with RegistryClient(plain_http=True) as client:
        cfg = Descriptor(RULES_CONFIG, client.push_blob(name, config), len(config))
        lay = Descriptor(RULES_LAYER, client.push_blob(name, layer), layer_size,
                         annotations={"org.opencontainers.image.title": "r.tar.gz"})
        client.push_manifest(name, "1.0.0", build_manifest(cfg, lay, {}), OCI_MANIFEST)
    return f"{name}:1.0.0"


def _install(capsys: pytest.CaptureFixture[str], config: Path, ref: str, dest: Path) -> str:
    run = run_config(capsys, config, "artifact", "install", ref, "--plain-http",
                     "--rulesfiles-dir", str(dest), "--state-dir", str(dest.parent / "state"))
    assert run.code == 1, run.stdout
    lines = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


@pytest.mark.parametrize("delta", [-1, +100])
def test_a_layer_of_another_size_than_its_descriptor_is_refused(
    capsys: pytest.CaptureFixture[str], registry: Registry, tmp_path: Path, isolated_home: Path,
    delta: int,
) -> None:
    layer = _tar_gz("r.yaml", b"- list: a\n  items: []\n")
    ref = _push(registry, f"size/r{delta + 1}", b'{"name":"r","version":"1.0.0"}', layer,
                len(layer) + delta)
    dest = tmp_path / "rules"
    line = _install(capsys, write_config(tmp_path), ref, dest)
    assert "over the limit" in line or "its descriptor says" in line
    assert not dest.exists() or visible(dest) == []  # the installer's own area aside


def test_a_config_with_mistyped_dependencies_is_one_line(
    capsys: pytest.CaptureFixture[str], registry: Registry, tmp_path: Path, isolated_home: Path,
) -> None:
    layer = _tar_gz("r.yaml", b"- list: a\n  items: []\n")
    ref = _push(registry, "typed/r", b'{"name":"r","version":"1.0.0","dependencies":5}', layer,
                len(layer))
    line = _install(capsys, write_config(tmp_path), ref, tmp_path / "rules")
    assert "'dependencies' must be a list" in line and "typed/r" in line


def test_an_index_repository_path_never_becomes_a_request_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_home: Path,
) -> None:
    with hostile_server(lambda *_: (200, {}, b"{}")) as reg:
        index = tmp_path / "index.yaml"
        index.write_text(f"- name: evil\n  type: rulesfile\n  registry: '{reg.host}'\n"
                         "  repository: ../../../admin/delete?x=\n")
        line = _install(capsys, write_config(tmp_path, index), "evil:1.0.0", tmp_path / "rules")
        assert "invalid repository" in line
        assert reg.seen == []
