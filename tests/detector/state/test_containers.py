"""Container ids from cgroup paths, and metadata from a real podman's Docker-compatible API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from detector.events import ContainerInfo, Event, ThreadInfo
from detector.state.backends import Backend
from detector.state.containers import (
    ContainerManager,
    fill_from_inspect,
    inspect_container,
    parse_cgroup,
    parse_cgroup_file,
    parse_cgroup_path,
    split_image,
)
from detector.state.tracker import StateTracker
from tests.realparts import Container, PodmanService, need

HEX = "45b1e6355a37a6d5cd60e28f82752985e7a3b3b72b11c80c91cba00703f6409c"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (f"/libpod_parent/libpod-{HEX}", "podman"),
        (f"/machine.slice/libpod-{HEX}.scope/container", "podman"),
        (f"/docker/{HEX}", "docker"),
        (f"/system.slice/docker-{HEX}.scope", "docker"),
        (f"/kubepods/besteffort/pod1234-ab/{HEX}", "containerd"),
        (f"/kubepods.slice/kubepods-burstable.slice/x/cri-containerd-{HEX}.scope", "containerd"),
        (f"/kubepods.slice/kubepods-pod1.slice/crio-{HEX}.scope", "cri-o"),
        # containerd namespaces (ctr run, nerdctl): checked on a real containerd in
        # test_runtimes.py too
        (f"/k8s.io/{HEX}", "containerd"),
        (f"/default/{HEX}", "containerd"),
        # kubepods, cgroupfs driver, every QoS class
        (f"/kubepods/pod0b3e0f4c-1b2a-4c1e-9d2f-5a3e8f0c2b11/{HEX}", "containerd"),
        (f"/kubepods/burstable/pod0b3e0f4c-1b2a-4c1e-9d2f-5a3e8f0c2b11/{HEX}", "containerd"),
        (f"/kubepods/besteffort/pod0b3e0f4c/{HEX}", "containerd"),
        # kubepods, systemd driver, each runtime's scope
        ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b3e.slice/"
         f"cri-containerd-{HEX}.scope", "containerd"),
        (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crio-{HEX}.scope",
         "cri-o"),
        (f"/kubepods.slice/kubepods-pod1.slice/docker-{HEX}.scope", "docker"),
        (f"/machine.slice/libpod-{HEX}.scope", "podman"),
        (f"/system.slice/docker-{HEX}.scope/init.scope", "docker"),
    ],
)
def test_runtime_cgroup_patterns(path: str, kind: str) -> None:
    assert parse_cgroup_path(path) == (kind, HEX)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # cgroup v1 (hybrid: v1 controllers and the v2 line, as on this machine)
        ("".join(f"{n}:{c}:/default/{HEX}\n" for n, c in
                 ((9, "name=systemd"), (4, "memory"), (1, "cpu"))) + f"0::/default/{HEX}\n",
         ("containerd", HEX, "default")),
        (f"12:pids:/kubepods/besteffort/pod1/{HEX}\n1:name=systemd:/kubepods/besteffort/pod1/"
         f"{HEX}\n", ("containerd", HEX, None)),
        # cgroup v2 only
        (f"0::/k8s.io/{HEX}\n", ("containerd", HEX, "k8s.io")),
        (f"0::/kubepods.slice/kubepods-pod1.slice/crio-{HEX}.scope\n", ("cri-o", HEX, None)),
        # a path from the BPF source (no hierarchy prefix)
        (f"/buildkit/{HEX}", ("containerd", HEX, "buildkit")),
        ("0::/user.slice/user-0.slice/session-3.scope\n", None),
        # containerd ids that are names (`ctr run ... test1`), as the container plugin reads them
        ("9:name=systemd:/default/test1\n8:pids:/default/test1\n0::/default/test1\n",
         ("containerd", "test1", "default")),
        ("8:pids:/default/test1\n0::/\n", ("containerd", "test1", "default")),
        ("/k8s.io/web_1.a-b", ("containerd", "web_1.a-b", "k8s.io")),
        # ...but not a one-controller group, a unit, conmon, a too long or a nested name
        ("4:memory:/process_api/3fe3a4d135d3f96e4d13d3511e9\n8:pids:/\n0::/\n", None),
        ("0::/system.slice/cron.service\n", None),
        ("8:pids:/libpod_parent/conmon\n0::/libpod_parent/conmon\n", None),
        (f"0::/default/{'a' * 65}\n", None),
        ("0::/default/test1/sub\n", None),
    ],
)
def test_cgroup_files_v1_and_v2(text: str, want: tuple[str, str, str | None] | None) -> None:
    assert parse_cgroup(text) == want


@pytest.mark.parametrize(
    "path",
    ["/", "/user.slice/user-0.slice/session-3.scope", "/init.scope",
     f"/libpod_parent/libpod-conmon-{HEX}", "/docker/abc"],
)
def test_host_paths(path: str) -> None:
    assert parse_cgroup_path(path) is None


def test_split_image() -> None:
    assert split_image("localhost:5000/a/b:1.2") == ("localhost:5000/a/b", "1.2", None)
    assert split_image("localhost:5000/a/b") == ("localhost:5000/a/b", None, None)
    assert split_image("busybox@sha256:ab") == ("busybox", None, "sha256:ab")


def test_k8s_labels_and_privileged_from_inspect() -> None:
    info = ContainerInfo(id=HEX[:12], full_id=HEX)
    fill_from_inspect(info, {
        "Name": "/web", "Image": "sha256:" + "e" * 64,
        "State": {"StartedAt": "2026-11-26T18:42:18.195053635Z"},
        "Config": {"Image": "docker.io/library/nginx:1.27",
                   "Labels": {"io.kubernetes.pod.name": "web-0",
                              "io.kubernetes.pod.namespace": "shop"}},
        "HostConfig": {"Privileged": True},
        "Mounts": [{"Source": "/data", "Destination": "/var/www"}],
    })
    assert (info.name, info.image_repository, info.image_tag, info.privileged) == (
        "web", "docker.io/library/nginx", "1.27", True)
    assert info.labels["io.kubernetes.pod.namespace"] == "shop"
    assert info.start_ts == 1795718538195053635
    assert info.image_id == "e" * 12 and info.mounts == [("/data", "/var/www")]


def test_unreachable_runtime_leaves_metadata_unknown(tmp_path: Path) -> None:
    mgr = ContainerManager(sockets=[("podman", str(tmp_path / "none.sock"))], first_wait=1)
    info = mgr.get("podman", HEX)
    assert mgr.wait_idle(5)
    assert info.id == HEX[:12] and info.name is None and mgr.fetch_errors == 1
    mgr.close()


def test_the_exec_of_a_container_s_init_waits_for_its_metadata() -> None:
    """A runtime slower than the events (a fake: a real one cannot be made slow on demand),
    which had not even written the container at its first sighting: the exec of the
    container's init (vpid 1) waits for the metadata, so a rule on the container's start sees
    it privileged; other execs never wait."""
    calls: list[str] = []

    def fetch(info: ContainerInfo, _ns: str | None) -> None:
        calls.append(info.id)
        time.sleep(0.2)
        if len(calls) == 1:
            raise LookupError("not written yet")
        info.name, info.privileged = "web", True

    t = StateTracker(read_proc=False)
    t.containers.backends = [Backend("slow", frozenset({"podman"}), fetch, lambda: None)]
    t.put_thread(ThreadInfo(tid=700, pid=700, comm="runc"))
    t.put_thread(ThreadInfo(tid=701, pid=701, comm="runc"))
    cgroup = f"0::/machine.slice/libpod-{HEX}.scope/container"

    def execve(tid: int, vpid: int) -> Event:
        return t.process(Event(num=tid, ts=tid, type="execve", tid=tid, res=0,
                               args={"exe": "sleep", "args": [], "filename": "/bin/sleep"},
                               ctx={"pid": tid, "cgroup": cgroup, "vpid": vpid}))  # fmt: skip

    try:
        runc = execve(700, 5)  # its first sighting: the fetch is queued, nothing waits
        assert runc.thread is not None and runc.thread.container.privileged is None
        start = time.monotonic()
        init = execve(701, 1)
        assert init.thread is not None and init.thread.container.privileged is True
        assert init.thread.container.name == "web" and len(calls) == 2
        assert time.monotonic() - start < 1.0  # bounded: INIT_WAIT
    finally:
        t.close()


def test_real_container_cgroup_gives_its_id(podman_container: Container) -> None:
    text = Path(f"/proc/{podman_container.pid}/cgroup").read_text()
    assert parse_cgroup_file(text) == ("podman", podman_container.id)


def test_metadata_from_the_podman_api(podman_container: Container,
                                      podman_api: PodmanService) -> None:
    data = inspect_container(str(podman_api.socket), podman_container.id)
    assert data["Id"] == podman_container.id
    mgr = ContainerManager(sockets=[("podman", str(podman_api.socket))], first_wait=0)
    try:
        info = mgr.get("podman", podman_container.id)
        assert mgr.wait_idle(20)
        assert info.id == podman_container.id[:12]
        assert info.name == podman_container.name
        assert info.image == podman_container.image
        assert (info.image_repository, info.image_tag) == (
            "localhost/falcoctl-py-busybox", f"test-{os.getpid()}")
        assert info.privileged is False
        assert info.start_ts is not None and info.start_ts < time.time_ns()
    finally:
        mgr.close()


def test_scan_attaches_container_and_its_own_users(podman_container: Container,
                                                   podman_api: PodmanService) -> None:
    t = StateTracker(container_sockets=[("podman", str(podman_api.socket))])
    try:
        t.scan()
        assert t.containers.wait_idle(20)
        th = t.threads.threads[podman_container.pid]
        assert th.comm == "sleep" and th.args == ["infinity"]
        assert th.container.id == podman_container.id[:12]
        assert th.container.name == podman_container.name
        # Users come from the container's /etc/passwd, not the host's.
        assert t.users.user(th.container.id, th.pid, 4242).name == "fpyuser"
        assert t.users.user("host", 1, 4242).name is None
        # The container's first process has runtime parents (conmon), not a container process.
        assert th.parent is not None and th.parent.container.id == "host"
    finally:
        t.close()


def test_cgroup_id_of_a_gone_process_still_names_its_container(podman_container: Container,
                                                              ) -> None:
    from detector.events import Event
    from detector.state.containers import CgroupPaths, cgroup2_mount

    mount = cgroup2_mount()
    need(mount is not None, "a cgroup v2 (unified) hierarchy")
    assert mount is not None
    line = next(ln for ln in Path(f"/proc/{podman_container.pid}/cgroup").read_text()
                .splitlines() if ln.startswith("0::"))
    cgroup_id = os.stat(mount + line[3:]).st_ino
    assert CgroupPaths(mount).path(cgroup_id) == line[3:]
    # An exec whose process is already gone when the tracker sees it (a busy detector).
    t = StateTracker(fetch_containers=False)
    ev = t.process(Event(num=1, ts=1, type="execve", tid=2**22 + 99, res=0,
                         args={"exe": "sh", "args": [], "filename": "/bin/sh"},
                         ctx={"pid": 2**22 + 99, "ppid": 1, "comm": "sh",
                              "cgroup_id": cgroup_id}))
    assert ev.thread is not None and ev.thread.container.full_id == podman_container.id


def test_a_runtime_that_comes_up_later_is_asked_again(tmp_path: Path, podman_container: Container,
                                                       podman_api: PodmanService) -> None:
    late = tmp_path / "late.sock"
    mgr = ContainerManager(sockets=[("podman", str(late))], first_wait=0)
    try:
        info = mgr.get("podman", podman_container.id)
        assert mgr.wait_idle(10) and info.name is None
        late.symlink_to(podman_api.socket)  # the runtime's socket appears
        entry = mgr._by_id[info.id]
        assert entry.retry_at > 0
        entry.retry_at = time.monotonic()  # skip the back-off
        assert mgr.get("podman", podman_container.id) is info
        assert mgr.wait_idle(20) and info.name == podman_container.name
    finally:
        mgr.close()
