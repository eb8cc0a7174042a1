"""The chart's pod run for real with ``podman kube play`` and the image from ``make image``.

The DaemonSet's pod template becomes a Pod (podman 4.3 does not play DaemonSets); rules come
from Debian's docker-registry and an index served on the host. One pod is shared by the tests
of the happy path: the init container installs the rules, the detector answers /healthz, a
``podman exec -t`` shell in another container raises the Notice alert, and a new rules version
pushed to the registry is installed by the follow sidecar and hot-reloaded without a restart.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.eventually import eventually
from tests.kube_parts import REPO, KubePlay, built_image, objects, playable
from tests.realparts import (
    Container,
    FileServer,
    Registry,
    busybox_image,
    free_port,
    need_bpf,
    start_container,
    start_file_server,
    start_registry,
)

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.podman, pytest.mark.registry,
              pytest.mark.slow, pytest.mark.timeout(900)]

RULES_V1 = REPO / "index" / "rules" / "falcoctl-py_rules.yaml"
NEW_RULE = """
- rule: Id in container after follow (falcoctl-py test)
  desc: exists only in version 1.1.0 of the test rules
  condition: >
    evt.type in (execve, execveat) and evt.rawres = 0 and container.id != host
    and proc.name = id
  output: Id run in a container (new rules) | container_id=%container.id
  priority: NOTICE
"""


def push_rules(registry: Registry, workdir: Path, version: str, text: str) -> None:
    """Push ``kube_rules.yaml`` as rulesfile ``version`` tagged latest."""
    from falcoctl_py.oci.client import RegistryClient
    from falcoctl_py.push import push_artifact

    src = workdir / version / "kube_rules.yaml"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(text)
    push_artifact(client=RegistryClient(plain_http=True), ref=registry.ref("rules/kube", version),
                  files=[src], artifact_type="rulesfile", version=version, tags=["latest"])


def chart_values(index_url: str, port: int, **extra: Any) -> dict[str, Any]:
    """Values for a pod on this machine: the local image, the test index, a free web port."""
    from tests.kube_parts import project_version

    values: dict[str, Any] = {
        "image": {"registry": "localhost", "repository": "falcoctl-py",
                  "tag": project_version(), "pullPolicy": "Never"},
        "collectors": {"containerEngine": {"sockets": []}},
        "resources": {},
        "falcoctl": {
            "artifact": {"install": {"args": ["--plain-http"]},
                         "follow": {"args": ["--plain-http"]}},
            "config": {
                "indexes": [{"name": "test", "url": index_url}],
                "artifact": {
                    "allowedTypes": ["rulesfile"],
                    "install": {"refs": ["kube-rules:latest"]},
                    "follow": {"refs": ["kube-rules:latest"], "every": "2s",
                               "falcoversions": f"http://localhost:{port}/versions"},
                },
            },
        },
        "falco": {"rules_files": ["/etc/falco/kube_rules.yaml"],
                  "webserver": {"listen_port": port}},
    }
    for key, value in extra.items():
        values[key] = value
    return values


@dataclass
class PodRun:
    play: KubePlay
    registry: Registry
    index: FileServer
    port: int
    workdir: Path
    busybox: Container

    def healthz(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
            return r.status == 200 and b"ok" in r.read()


def serve_index(registry: Registry, workdir: Path) -> FileServer:
    www = workdir / "www"
    www.mkdir()
    (www / "index.yaml").write_text(yaml.safe_dump([{
        "name": "kube-rules", "type": "rulesfile", "registry": registry.host,
        "repository": "rules/kube", "description": "rules for the pod test",
        "keywords": ["kube"]}]))
    return start_file_server(www)


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodRun]:
    need_bpf()
    image = built_image()
    assert image
    workdir = tmp_path_factory.mktemp("kube-pod")
    registry = start_registry(workdir / "registry")
    index = serve_index(registry, workdir)
    busy_image = busybox_image(workdir / "busybox")
    busy = start_container(busy_image, f"fpy-kube-busybox-{os.getpid()}")
    push_rules(registry, workdir / "src", "1.0.0", RULES_V1.read_text())
    port = free_port()
    objs = objects(chart_values(f"{index.url}/index.yaml", port))
    play = KubePlay(workdir, playable(objs, f"fpy-kube-{os.getpid()}"), f"fpy-kube-{os.getpid()}")
    try:
        play.play()
        run = PodRun(play, registry, index, port, workdir, busy)
        yield run
    finally:
        for name in ("detector", "falcoctl-artifact-follow", "falcoctl-artifact-install"):
            print(f"--- {name}\n{play.logs(name)[-3000:]}")
        play.down()
        busy.remove()
        index.stop()
        registry.stop()


def _ready(pod: PodRun) -> bool:
    try:
        return pod.healthz()
    except OSError as exc:
        state = pod.play.state("detector")
        assert state.get("Status") == "running", f"detector {state.get('Status')}: " + \
            pod.play.logs("detector")[-800:]
        raise AssertionError(f"/healthz: {exc}") from exc


def test_init_container_installs_rules_and_detector_becomes_ready(pod: PodRun) -> None:
    eventually(lambda: _ready(pod), timeout=300, interval=1, what="detector /healthz")
    log = pod.play.logs("falcoctl-artifact-install")
    assert "kube-rules" in log, log
    assert "Traceback" not in pod.play.logs("detector")


def test_shell_in_another_container_raises_the_notice_alert(pod: PodRun) -> None:
    eventually(lambda: _ready(pod), timeout=300, interval=1, what="detector /healthz")

    def alerted() -> bool:
        result = pod.busybox.exec("sh", "-c", "uptime", tty=True)
        assert result.returncode == 0, result.stderr
        lines = [ln for ln in pod.play.logs("detector").splitlines()
                 if "Notice" in ln and "Terminal shell in container" not in ln.split("Notice")[0]
                 and pod.busybox.id[:12] in ln]
        return bool(lines)

    eventually(alerted, timeout=60, interval=2, what="the Notice alert in the detector's log")


def test_follow_installs_a_new_version_and_the_detector_reloads_it(pod: PodRun) -> None:
    eventually(lambda: _ready(pod), timeout=300, interval=1, what="detector /healthz")
    started = pod.play.state("detector")["StartedAt"]
    push_rules(pod.registry, pod.workdir / "src", "1.1.0", RULES_V1.read_text() + NEW_RULE)

    def followed() -> bool:
        return "1.1.0" in pod.play.logs("falcoctl-artifact-follow")

    eventually(followed, timeout=120, interval=1, what="the sidecar installing 1.1.0")

    def new_rule_fires() -> bool:
        pod.busybox.exec("id")
        return "Id run in a container (new rules)" in pod.play.logs("detector")

    eventually(new_rule_fires, timeout=60, interval=2, what="the rule of 1.1.0 firing")
    state = pod.play.state("detector")
    assert state["Status"] == "running" and state["StartedAt"] == started, state
