"""Runtime metadata backends: engines config, generated gRPC modules, and real runtimes.

Real parts: Debian's containerd (a CRI pod sandbox with Kubernetes metadata, a ``ctr run``
container in the ``default`` namespace), podman with no API service (its on-disk state), and a
socket that accepts and never answers.
"""

from __future__ import annotations

import filecmp
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detector.errors import DetectorError
from detector.events import ContainerInfo, Event, ThreadInfo
from detector.state.containers import ContainerManager, backends_for
from detector.state.runtimes.engines import DEFAULT_SOCKETS, Engines, engines_from_init_config
from detector.state.runtimes.podman_storage import PodmanStorage
from detector.state.tracker import StateTracker
from tests.detector.state.stream_parts import read_until
from tests.eventually import eventually
from tests.realparts import Container
from tests.runtimes_parts import Containerd, Docker, running_containerd, running_docker

PROTO = Path(__file__).resolve().parents[3] / "detector" / "state" / "runtimes" / "proto"
# Ids unique to this process: ``ctr run``'s runc state (/run/containerd/runc/<namespace>) and
# cgroup (/<namespace>/<id>) are machine-wide, not under the private containerd's root, so two
# test runs using one id kill each other's container ("cannot exec in a stopped state").
CTR_ID = f"c0ffee{os.getpid():010x}" + "0123456789abcdef" * 3  # 64 hex, as nerdctl's
NAMED_ID = f"test{os.getpid()}"  # `ctr run <image> test1`: an id that is a name
# a name longer than 12 characters; its first 12 (container.id, the table's key) unique too
LONG_ID = f"fpy{os.getpid():07d}-named_container.1"
POD_UID = f"0b3e0f4c-1b2a-4c1e-9d2f-{os.getpid():012x}"  # its cgroup is machine-wide too


# -- configuration ----------------------------------------------------------------------------
def test_engines_from_the_container_plugin_init_config() -> None:
    got = engines_from_init_config({
        "label_max_len": 100, "hooks": ["create"],
        "engines": {"docker": {"enabled": False, "sockets": ["/var/run/docker.sock"]},
                    "containerd": {"enabled": True, "sockets": ["unix:///run/a.sock"]},
                    "cri": {"enabled": True, "sockets": ["/run/crio/crio.sock"]},
                    "lxc": {"enabled": True}},
    })
    assert got.docker == () and got.containerd == ("/run/a.sock",)
    assert got.cri == ("/run/crio/crio.sock",) and got.podman == DEFAULT_SOCKETS["podman"]
    names = [b.name for b in backends_for(got)]
    assert names[0] == "cri:/run/crio/crio.sock" and "containerd:/run/a.sock" in names
    assert not any(n.startswith("docker:") for n in names)


@pytest.mark.parametrize(("config", "key"), [
    ({"engines": ["docker"]}, "init_config.engines"),
    ({"engines": {"cri": {"sockets": "/run/crio/crio.sock"}}}, "init_config.engines.cri.sockets"),
    ({"engines": {"docker": {"enabled": "yes"}}}, "init_config.engines.docker.enabled"),
])
def test_bad_engines_config_is_one_clear_error(config: dict[str, object], key: str) -> None:
    with pytest.raises(DetectorError) as err:
        engines_from_init_config(config)
    assert key in err.value.one_line() and "\n" not in err.value.one_line()


def test_generated_modules_match_their_proto(tmp_path: Path) -> None:
    """The committed *_pb2.py/.pyi are what grpcio-tools makes of the .proto files."""
    protos = sorted(p.name for p in PROTO.glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}",
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", *protos],
                   check=True, capture_output=True)
    for name in protos:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            made = name.removesuffix(".proto") + suffix
            assert filecmp.cmp(tmp_path / made, PROTO / made, shallow=False), \
                f"{made} is stale: regenerate it from {name} (see runtimes/grpcunix.py)"


def test_cri_answers_become_container_and_pod_fields() -> None:
    """A pod on a CNI network: IP and CNI result from the verbose sandbox status (containerd's
    ``info`` JSON shape), digest from the image ref, privileged from the container config."""
    import json

    from detector.state.runtimes.cri import fill_from_cri
    from detector.state.runtimes.proto import cri_pb2 as pb

    status = pb.ContainerStatusResponse(status=pb.ContainerStatus(
        id="f" * 64, metadata=pb.ContainerMetadata(name="app"), started_at=5,
        image=pb.ImageSpec(image="docker.io/library/nginx:1.27"),
        image_ref="docker.io/library/nginx@sha256:" + "a" * 64,
        mounts=[pb.Mount(container_path="/data", host_path="/srv/data")],
        labels={"io.kubernetes.pod.name": "web-1"}))
    pod = pb.PodSandboxStatusResponse(
        status=pb.PodSandboxStatus(id="e" * 64, metadata=pb.PodSandboxMetadata(
            name="web-1", namespace="shop", uid="u-1"), labels={"app": "web"},
            network=pb.PodSandboxNetworkStatus(ip="10.244.0.7")),
        info={"info": json.dumps({"cniResult": {"Interfaces": {"eth0": {"IPConfigs": [
            {"IP": "10.244.0.7"}]}}}})})
    extra = {"sandboxID": "e" * 64, "config": {"linux": {"security_context": {
        "privileged": True}}}}
    info = ContainerInfo(id="f" * 12, full_id="f" * 64, type="containerd")
    fill_from_cri(info, status, extra, pod, "test")
    ev = Event(num=1, ts=1, type="execve", thread=ThreadInfo(tid=1, pid=1, container=info))
    assert _field(ev, "k8s.pod.ip") == _field(ev, "container.ip") == "10.244.0.7"
    assert json.loads(str(_field(ev, "k8s.pod.cni.json")))["Interfaces"]["eth0"]
    assert _field(ev, "container.image.digest") == "sha256:" + "a" * 64
    assert _field(ev, "container.image.tag") == "1.27" and _field(ev, "container.privileged")
    assert _field(ev, "container.mounts") == "/srv/data:/data"
    assert _field(ev, "k8s.pod.full_sandbox_id") == "e" * 64
    assert (info.name, info.start_ts, info.pod_namespace) == ("app", 5, "shop")


# -- containerd ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A private containerd with a CRI pod (host network) and a ``ctr run`` container."""
    with running_containerd(tmp_path_factory.mktemp("containerd")) as ctd:
        sandbox, cid = ctd.run_pod("web-0", "shop", POD_UID, {"app": "web", "tier": "front"},
                                   "nginx", {"io.kubernetes.container.name": "nginx"})
        ctd.cri = (sandbox, cid)
        ctd.run(CTR_ID, labels={"team": "blue"}, privileged=True)
        ctd.run(NAMED_ID, labels={"team": "red"})
        ctd.run(LONG_ID)
        yield ctd


def _cgroup(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def _task_pid(ctd: Containerd, cid: str, ns: str) -> int:
    return ctd.task_pid(cid, ns)


def test_cri_container_and_pod_fields(containerd: Containerd) -> None:
    sandbox, cid = containerd.cri
    from detector.state.containers import parse_cgroup

    kind, full, ns = parse_cgroup(_cgroup(_task_pid(containerd, cid, "k8s.io")))  # type: ignore[misc]
    assert (kind, full) == ("containerd", cid) and ns is None  # /kubepods/besteffort/pod<uid>/<id>
    mgr = ContainerManager(engines=_engines(containerd))
    info = mgr.get(kind, full)
    assert mgr.wait_idle(20)
    assert (info.name, info.type, info.image) == ("nginx", "containerd", containerd.image)
    assert (info.pod_name, info.pod_namespace, info.pod_uid) == ("web-0", "shop", POD_UID)
    assert info.pod_sandbox_id == sandbox and info.pod_labels == {"app": "web", "tier": "front"}
    assert info.image_repository == "localhost/fpy-busybox" and info.privileged is False
    assert info.labels["io.kubernetes.container.name"] == "nginx" and info.start_ts
    assert mgr.lookups == 1  # CRI answered first
    mgr.close()


def test_ctr_run_container_fields(containerd: Containerd) -> None:
    from detector.state.containers import parse_cgroup

    found = parse_cgroup(_cgroup(_task_pid(containerd, CTR_ID, "default")))
    assert found == ("containerd", CTR_ID, "default")  # was "host" before
    mgr = ContainerManager(engines=_engines(containerd))
    info = mgr.get(found[0], found[1], namespace=found[2])
    assert mgr.wait_idle(20)
    assert info.labels["team"] == "blue" and info.privileged is True
    assert info.image == containerd.image and (info.image_digest or "").startswith("sha256:")
    assert info.name == CTR_ID and info.pod_name is None
    mgr.close()


@pytest.mark.parametrize("cid", [NAMED_ID, LONG_ID])
def test_ctr_run_with_a_name_is_a_container_not_the_host(containerd: Containerd, cid: str) -> None:
    """As the container plugin: ``/<namespace>/<name>`` is a containerd container."""
    from detector.state.containers import parse_cgroup

    found = parse_cgroup(_cgroup(_task_pid(containerd, cid, "default")))
    assert found == ("containerd", cid, "default")  # was None (host) for a non-hex id
    mgr = ContainerManager(engines=_engines(containerd))
    info = mgr.get(found[0], found[1], namespace=found[2])
    assert mgr.wait_idle(20)
    assert (info.id, info.full_id, info.name) == (cid[:12], cid, cid)
    assert info.image == containerd.image
    mgr.close()


def test_real_kernel_events_in_a_named_ctr_container(containerd: Containerd) -> None:
    """The kernel's events in ``ctr run ... fpy<pid>-named_container.1``: container.id is its
    first 12 characters (the plugin's), container.name the whole name."""
    ev = exec_seen(_engines(containerd), lambda: containerd.ctr(
        "tasks", "exec", "--exec-id", "fpy3", LONG_ID, "/bin/cat", "/etc/passwd"), LONG_ID)
    assert _field(ev, "container.id") == LONG_ID[:12] != LONG_ID
    assert _field(ev, "container.name") == LONG_ID
    assert _field(ev, "container.type") == "containerd"


def _engines(ctd: Containerd, **kw: object) -> Engines:
    sock = str(ctd.socket)
    return Engines(docker=(), podman=(), containerd=(sock,), cri=(sock,), podman_storage=None,
                   **kw)  # type: ignore[arg-type]


def _field(ev: Event, name: str) -> object:
    from detector.rules.fields.extract import arg_expr, make_extractor

    base, _, arg = name.partition("[")
    expr = arg_expr(base, arg.rstrip("]") or None)
    assert expr is not None, name
    return make_extractor(expr)(ev)


def exec_seen(engines: Engines, action: Callable[[], object], full_id: str) -> Event:
    """The kernel's execve of ``cat`` in the container ``full_id`` while ``action`` runs."""
    from tests.detector.test_hello_world import _source

    source = _source()
    tracker = StateTracker(engines=engines)
    seen: list[Event] = []
    try:
        tracker.scan()
        assert tracker.containers.wait_idle(20)
        threading.Thread(target=action).start()  # the source records from open(): no race

        def handle(ev: Event) -> None:
            if ev.type == "execve" and ev.thread is not None and ev.thread.comm == "cat" \
                    and ev.thread.container.full_id == full_id:
                seen.append(ev)

        read_until(source, tracker, handle, lambda: bool(seen),
                   what=f"an execve of cat in container {full_id[:12]}")
    finally:
        source.close()
        tracker.close()
    return seen[0]


def test_real_kernel_events_in_a_pod_carry_k8s_fields(containerd: Containerd) -> None:
    """An exec into the CRI container, seen by the kernel source: container.* and k8s.*."""
    sandbox, cid = containerd.cri
    ev = exec_seen(_engines(containerd), lambda: containerd.ctr(
        "tasks", "exec", "--exec-id", "fpy1", cid, "/bin/cat", "/etc/passwd",
        namespace="k8s.io"), cid)
    assert _field(ev, "container.id") == cid[:12]
    assert _field(ev, "container.name") == "nginx"
    assert _field(ev, "container.image.repository") == "localhost/fpy-busybox"
    assert _field(ev, "k8s.pod.name") == "web-0" and _field(ev, "k8s.ns.name") == "shop"
    assert _field(ev, "k8s.pod.uid") == POD_UID
    assert _field(ev, "k8s.pod.sandbox_id") == sandbox[:12]
    assert _field(ev, "k8s.pod.label[app]") == "web"
    assert _field(ev, "k8s.pod.labels") == "app:web,tier:front"


def test_real_kernel_events_in_a_ctr_container(containerd: Containerd) -> None:
    """``ctr tasks exec`` into the ``ctr run`` container: it is a container, not ``host``."""
    ev = exec_seen(_engines(containerd), lambda: containerd.ctr(
        "tasks", "exec", "--exec-id", "fpy2", CTR_ID, "/bin/cat", "/etc/passwd"), CTR_ID)
    assert _field(ev, "container.id") == CTR_ID[:12] and _field(ev, "container.type") == \
        "containerd"
    assert _field(ev, "container.label[team]") == "blue"
    assert _field(ev, "container.privileged") is True


# -- Docker -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    """A private dockerd with one busybox container."""
    with running_docker(tmp_path_factory.mktemp("docker")) as dk:
        dk.run(f"fpy-web-{os.getpid()}", "--label", "team=green")
        yield dk


def test_docker_container_fields_on_real_kernel_events(docker: Docker) -> None:
    cid = docker.made[0]
    engines = Engines(docker=(str(docker.socket),), podman=(), containerd=(), cri=(),
                      podman_storage=None)
    ev = exec_seen(engines, lambda: docker.docker("exec", cid, "/bin/cat", "/etc/passwd"), cid)
    assert _field(ev, "container.id") == cid[:12] and _field(ev, "container.type") == "docker"
    assert _field(ev, "container.name") == f"fpy-web-{os.getpid()}"
    assert _field(ev, "container.image") == docker.image
    assert _field(ev, "container.image.tag") == f"dk-{os.getpid()}"
    assert _field(ev, "container.label[team]") == "green"
    assert _field(ev, "container.privileged") is False


# -- a runtime that accepts and never answers --------------------------------------------------
class Silent:
    """A unix socket that accepts connections and never writes a byte."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(64)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


def _storm(tracker: StateTracker, cgroup: str, n: int) -> list[Event]:
    out = []
    th = ThreadInfo(tid=4242, pid=4242, comm="sh")
    tracker.put_thread(th)
    for i in range(n):
        ev = Event(num=i + 1, ts=i, type="execve", tid=4242, res=0,
                   args={"exe": "sh", "args": [], "filename": "/bin/sh"},
                   ctx={"pid": 4242, "cgroup": cgroup})
        out.append(tracker.process(ev))
    return out


def test_a_silent_runtime_never_holds_events_and_fields_fill_in_later(
        containerd: Containerd, tmp_path: Path) -> None:
    cid = containerd.cri[1]
    link = tmp_path / "cri.sock"
    silent = Silent(tmp_path / "silent.sock")
    link.symlink_to(silent.path)
    tracker = StateTracker(engines=Engines(docker=(), podman=(), containerd=(), cri=(str(link),),
                                           podman_storage=None, timeout=1.0), read_proc=False)
    try:
        events = _storm(tracker, f"0::/kubepods/besteffort/pod{POD_UID}/{cid}", 2000)
        # every event went through while the runtime held its answer back
        assert len(events) == 2000 and eventually(lambda: silent.accepted, what="a connection")
        info = events[-1].thread.container  # type: ignore[union-attr]
        assert info.full_id == cid and info.name is None
        assert not tracker.containers.wait_idle(0)  # the fetch is still waiting on the socket
        link.unlink()
        link.symlink_to(containerd.socket)  # the runtime answers from now on
        silent.close()

        def named() -> str | None:
            _storm(tracker, f"0::/kubepods/besteffort/pod{POD_UID}/{cid}", 1)
            return info.name

        assert eventually(named, timeout=30, what="the container's name") == "nginx"
        assert info.pod_name == "web-0"
    finally:
        silent.close()
        tracker.close()


# -- podman without its API service --------------------------------------------------------------
def test_podman_storage_without_a_service(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.realparts import busybox_image, podman, start_container

    image = busybox_image(tmp_path_factory.mktemp("podman-priv"),
                          tag=f"localhost/fpy-busybox:priv-{os.getpid()}")
    c: Container = start_container(image, f"fpy-priv-{os.getpid()}", "--privileged",
                                   "--label", "team=red")
    try:
        store = PodmanStorage(podman("info", "--format", "{{.Store.GraphRoot}}").strip())
        mgr = ContainerManager(backends=[b for b in backends_for(Engines(
            docker=(), podman=(), containerd=(), cri=(), podman_storage=store.root))])
        info = mgr.get("podman", c.id)
        assert mgr.wait_idle(20)
        assert (info.name, info.image, info.privileged) == (c.name, image, True)
        assert info.labels["team"] == "red" and info.image_tag == f"priv-{os.getpid()}"
        mgr.close()
        with pytest.raises(LookupError):
            store.config("f" * 64)
    finally:
        c.remove()
        podman("rmi", image, check=False)


def test_podman_storage_ignores_hostile_documents(tmp_path: Path) -> None:
    """A state file with a deep or broken JSON document for the id gives nothing, quickly."""
    cid = "d" * 64
    (tmp_path / "libpod").mkdir()
    doc = b'{"spec":' + b"[" * 5000 + b"]" * 5000 + b',"id":"' + cid.encode() + b'"}'
    (tmp_path / "libpod" / "bolt_state.db").write_bytes(b"\0" * 100 + doc + b"\0" * 100)
    with pytest.raises(LookupError):
        PodmanStorage(str(tmp_path)).config(cid)
    shallow = b'{"spec":' + b"[" * 80 + b"]" * 80 + b',"id":"' + cid.encode() + b'"}'
    (tmp_path / "libpod" / "bolt_state.db").write_bytes(shallow)  # over the depth limit
    with pytest.raises(LookupError):
        PodmanStorage(str(tmp_path)).config(cid)
    with pytest.raises(LookupError):
        PodmanStorage(str(tmp_path)).config("../../etc/passwd")
