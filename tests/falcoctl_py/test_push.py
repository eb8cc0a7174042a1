"""Push in falcoctl's format, read back by skopeo; pull; argument checks."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falcoctl_py.errors import LocatedError, NotFoundError, UsageError
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import Platform
from falcoctl_py.push import parse_dependency, pull_artifact, push_artifact, rulesfile_metadata
from tests.falcoctl_py.artifact_helpers import write_config
from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import Registry, need_binary

RULES = Path(__file__).resolve().parents[3] / "shared" / "falco-rules"


@pytest.fixture
def client() -> Iterator[RegistryClient]:
    with RegistryClient(plain_http=True) as c:
        yield c


def skopeo(*args: str) -> str:
    binary = need_binary("skopeo")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def test_rulesfile_round_trip_with_skopeo(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    result = push_artifact(
        client=client,
        ref=registry.ref("falcosecurity/rules/falco-rules"),
        files=[RULES / "falco_rules.yaml"],
        artifact_type="rulesfile",
        version="5.0.1",
        tags=["5.0.1"],
        add_floating_tags=True,
        annotation_source="https://github.com/falcosecurity/rules",
    )
    assert result.tags == ["5.0.1", "5", "5.0"]
    raw = json.loads(
        skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.ref('falcosecurity/rules/falco-rules', '5')}",
        )
    )
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert raw["config"]["mediaType"] == "application/vnd.cncf.falco.rulesfile.config.v1+json"
    assert [layer["mediaType"] for layer in raw["layers"]] == [
        "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"
    ]
    assert raw["layers"][0]["annotations"] == {
        "org.opencontainers.image.title": "falco_rules.yaml.tar.gz"
    }
    assert (
        raw["annotations"]["org.opencontainers.image.source"]
        == "https://github.com/falcosecurity/rules"
    )
    assert raw["annotations"]["org.opencontainers.image.created"].endswith("Z")
    out = tmp_path / "copy"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.ref('falcosecurity/rules/falco-rules', '5.0')}",
        f"dir:{out}",
    )
    config = json.loads((out / raw["config"]["digest"].split(":")[1]).read_bytes())
    assert config == {
        "name": "falco-rules",
        "version": "5.0.1",
        "dependencies": [{"name": "container", "version": "0.4.0"}],
        "requirements": [{"name": "engine_version_semver", "version": "0.57.0"}],
    }
    layer = (out / raw["layers"][0]["digest"].split(":")[1]).read_bytes()
    assert _untar(layer) == {"falco_rules.yaml": (RULES / "falco_rules.yaml").read_bytes()}


def test_plugin_index_per_platform_and_pull(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    amd, arm = tmp_path / "amd" / "libk8s.so", tmp_path / "arm" / "libk8s.so"
    for path, body in ((amd, b"amd64 build"), (arm, b"arm64 build")):
        path.parent.mkdir()
        path.write_bytes(body)
    ref = registry.ref("plugins/k8saudit", "0.11.0")
    push_artifact(
        client=client,
        ref=ref,
        files=[amd, arm],
        artifact_type="plugin",
        version="0.11.0",
        platforms=["linux/amd64", "linux/arm64"],
        requires=["plugin_api_version:3.0.0"],
        depends_on=["json:0.7.0|json-alt:1.0.0"],
    )
    index = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    pulled = pull_artifact(
        client=client, ref=ref, dest_dir=tmp_path / "out", platform=Platform("linux", "arm64")
    )
    assert pulled.type == "plugin" and Path(pulled.path).name == "libk8s.so.tar.gz"
    assert _untar(Path(pulled.path).read_bytes()) == {"libk8s.so": b"arm64 build"}
    inner = json.loads(
        skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.ref('plugins/k8saudit')}@{pulled.manifest_digest}",
        )
    )
    config_digest = inner["config"]["digest"]
    config = json.loads(client.get_blob_bytes(f"{registry.host}/plugins/k8saudit", config_digest))
    assert config["dependencies"] == [
        {
            "name": "json",
            "version": "0.7.0",
            "alternatives": [{"name": "json-alt", "version": "1.0.0"}],
        }
    ]
    assert config["requirements"] == [{"name": "plugin_api_version", "version": "3.0.0"}]


def test_premade_tar_gz_is_pushed_as_is(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    archive = tmp_path / "bundle.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"a"))
    archive.write_bytes(gzip.compress(raw.getvalue()))
    ref = registry.ref("assets/bundle", "1.0.0")
    push_artifact(client=client, ref=ref, files=[archive], artifact_type="asset", version="1.0.0")
    pulled = pull_artifact(
        client=client, ref=ref, dest_dir=tmp_path / "out", platform=Platform("linux", "amd64")
    )
    assert Path(pulled.path).read_bytes() == archive.read_bytes()
    assert Path(pulled.path).name == "bundle.tar.gz"


def test_argument_checks(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- list: a\n  items: []\n")
    with RegistryClient(plain_http=True) as c:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"version": "1.0"}, "not a strict semantic version"),
            ({"version": "1.0.0", "artifact_type": "plugin"}, "one --platform per file"),
            ({"version": "1.0.0", "depends_on": ["Bad:1.0.0"]}, "invalid dependency"),
            ({"version": "1.0.0", "depends_on": ["a:1"]}, "not a strict semantic version"),
            ({"version": "1.0.0", "requires": ["plugin_api_version"]}, "invalid requirement"),
            ({"version": "1.0.0", "artifact_type": "thing"}, "unknown artifact type"),
        ]
        for kwargs, message in cases:
            args = {"artifact_type": "rulesfile", **kwargs}
            with pytest.raises(UsageError, match=message):
                push_artifact(client=c, ref="127.0.0.1:1/x/y:1", files=[f], **args)


def test_rulesfile_metadata_int_engine_and_alternatives(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(
        "- required_engine_version: 10\n"
        "- required_plugin_versions:\n"
        "  - name: k8saudit\n    version: 0.7.0\n"
        "    alternatives:\n      - name: k8saudit-eks\n        version: 0.4.0\n"
        "  - name: json\n    version: 0.7.0\n"
    )
    deps, reqs = rulesfile_metadata(f)
    assert [(r.name, r.version) for r in reqs] == [("engine_version_semver", "0.10.0")]
    assert deps[0].alternatives[0].name == "k8saudit-eks" and deps[1].name == "json"
    f.write_text("- rule: [unclosed\n")
    with pytest.raises(LocatedError, match=r"r\.yaml:"):
        rulesfile_metadata(f)


def test_parse_dependency() -> None:
    dep = parse_dependency("k8saudit:0.11.0|k8saudit-eks:0.7.0")
    assert (dep.name, dep.version, dep.alternatives[0].name) == (
        "k8saudit",
        "0.11.0",
        "k8saudit-eks",
    )


def test_push_refuses_a_missing_file_and_a_non_semver_engine_before_pushing(
    registry: Registry, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    ref = registry.ref("me/refused", "1.0.0")
    args = ("--type", "rulesfile", "--version", "1.0.0", "--plain-http")
    run = run_config(capsys, config, "registry", "push", ref, str(tmp_path / "nope.yaml"), *args)
    assert run.code == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"Error: cannot read {tmp_path / 'nope.yaml'}: No such file or directory "
        "(hint: check the path of the file to push)"
    ]
    rules = tmp_path / "r.yaml"
    rules.write_text("- required_engine_version: latest\n- list: a\n  items: []\n")
    run = run_config(capsys, config, "registry", "push", ref, str(rules), *args)
    assert run.code == 1
    assert f"{rules}: required_engine_version 'latest' is not a semantic version" in run.stderr
    with RegistryClient(plain_http=True) as c, pytest.raises(NotFoundError):
        c.list_tags(f"{registry.host}/me/refused")  # nothing was pushed
