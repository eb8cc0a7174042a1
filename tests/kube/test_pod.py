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
from tests.kube_parts import REPO, KubePlay, built_image, image_tag, objects, playable
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
    values: dict[str, Any] = {
        "image": {"registry": "localhost", "repository": "falcoctl-py",
                  "tag": image_tag(), "pullPolicy": "Never"},
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
    # podman removes a finished init container (and its log): look at what it left behind.
    installed = pod.play.podman("exec", pod.play.container("detector"),
                                "/bin/cat", "/etc/falco/kube_rules.yaml").stdout
    assert installed == RULES_V1.read_text()
    log = pod.play.logs("detector")
    assert "rules from 1 files" in log and "Traceback" not in log, log


def test_shell_in_another_container_raises_the_notice_alert(pod: PodRun) -> None:
    eventually(lambda: _ready(pod), timeout=300, interval=1, what="detector /healthz")

    def alerted() -> bool:
        result = pod.busybox.exec("sh", "-c", "uptime", tty=True)
        assert result.returncode == 0, result.stderr
        return any("Notice" in ln and pod.busybox.id[:12] in ln
                   for ln in pod.play.logs("detector").splitlines())

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


def _bare_pod(tmp_path: Path, name: str, values: dict[str, Any]) -> KubePlay:
    """A pod of the chart with ``values`` that is not restarted (its exits are observed).

    Kubernetes would restart a failed init container with its own backoff (CrashLoopBackOff);
    podman plays the pod once, which shows the chart's own retries and the final failure.
    """
    built_image()
    objs = objects(values)
    return KubePlay(tmp_path, playable(objs, name, restart="Never"), name)


def test_registry_down_fails_the_init_container_and_the_detector_never_starts(
    tmp_path: Path,
) -> None:
    need_bpf()
    registry = start_registry(tmp_path / "registry")
    index = serve_index(registry, tmp_path)
    registry.stop()  # the index names it; nothing listens there any more
    name = f"fpy-kube-down-{os.getpid()}"
    values = chart_values(f"{index.url}/index.yaml", free_port())
    values["falcoctl"]["artifact"]["install"]["retries"] = 2
    play = _bare_pod(tmp_path, name, values)
    try:
        proc = play.podman("kube", "play", "--replace", str(play.file), check=False, timeout=600)
        listing = play.podman("ps", "-a", "--pod", "--filter", f"pod={name}",
                              "--format", "{{.Names}} {{.State}}").stdout
        log = proc.stdout + proc.stderr + play.logs("falcoctl-artifact-install")
        assert "Traceback" not in log
        assert "cannot connect to registry" in log, log
        assert "retrying in 2s" in log and "retrying in 4s" in log, log
        assert "artifact install failed 3 times" in log, log
        detector_started = any(ln.startswith(play.container("detector")) and "running" in ln
                               for ln in listing.splitlines())
        assert not detector_started, listing
        assert proc.returncode != 0 or "exited" in listing, (proc.stderr, listing)
    finally:
        play.down()
        index.stop()


def test_detector_without_bpf_privileges_exits_with_the_driver_check_line(
    tmp_path: Path,
) -> None:
    need_bpf()
    name = f"fpy-kube-nopriv-{os.getpid()}"
    values = {
        "image": {"registry": "localhost", "repository": "falcoctl-py",
                  "tag": image_tag(), "pullPolicy": "Never"},  # the image built_image made
        "resources": {}, "collectors": {"containerEngine": {"enabled": False}},
        "driver": {"loader": {"enabled": False}},
        "falcoctl": {"artifact": {"install": {"enabled": False}, "follow": {"enabled": False}}},
        "falco": {"webserver": {"listen_port": free_port()}},
    }
    play = _bare_pod(tmp_path, name, values)
    docs = list(yaml.safe_load_all(play.file.read_text()))
    detector = docs[-1]["spec"]["containers"][0]
    assert detector["name"] == "detector"
    detector["securityContext"] = {"privileged": False, "capabilities": {"drop": ["ALL"]}}
    play.file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    try:
        play.podman("kube", "play", "--replace", str(play.file), timeout=300)

        def exited() -> dict[str, Any] | None:
            state = play.state("detector")
            return state if state.get("Status") == "exited" else None

        state = eventually(exited, timeout=120, interval=1, what="the detector exiting")
        log = play.logs("detector")
        assert state["ExitCode"] == 1, log
        assert "Error: driver check:" in log and "FAILED" in log, log
        assert "privileges" in log or "bpf" in log, log
        assert "Traceback" not in log
    finally:
        play.down()
