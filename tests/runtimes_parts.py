"""Real container runtimes for tests: Debian's containerd (CRI and ``ctr``) and Docker.

Each daemon runs with its own root, state and socket under a temporary directory, so tests
never touch the host's runtimes. Images come from a busybox rootfs (nothing can be pulled):
``podman save --format oci-archive`` then ``ctr images import`` for containerd, ``docker
import`` of the rootfs tarball for Docker. A missing part skips the test (fails under
``FALCOCTL_PY_REQUIRE_REAL=1``), as :mod:`tests.realparts` does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.eventually import eventually
from tests.realparts import busybox_image, need, need_binary, need_root, podman

BUSYBOX_CMD = ["/bin/sleep", "3600"]


def _wait_socket(path: Path, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        if not path.exists():
            return False
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            return True
        return False

    eventually(up, timeout=60, what=f"{what} listening on {path}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _kill_children_of_socket(sock: Path) -> None:
    """Shims (and dockerd's containerd) a daemon started on ``sock`` can outlive it: end those
    whose command line names that private path, by pid."""
    needle = str(sock).encode()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd" in cmdline and needle in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- containerd -----------------------------------------------------------------------------
@dataclass
class Containerd:
    """A private containerd: socket, root and state under ``workdir``."""

    workdir: Path
    socket: Path
    process: subprocess.Popen[bytes]
    image: str = ""  # the imported busybox image, also the CRI sandbox image
    made: list[tuple[str, str]] = field(default_factory=list)  # (namespace, id) of ctr runs
    pods: list[str] = field(default_factory=list)
    cgroup_parent: str = "/kubepods/besteffort/pod{uid}"
    cri: tuple[str, str] = ("", "")  # (sandbox id, container id) a test made

    def ctr(self, *args: str, namespace: str = "default", timeout: float = 120) -> str:
        proc = subprocess.run(["ctr", "-a", str(self.socket), "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def run(self, cid: str, *, namespace: str = "default", labels: dict[str, str] | None = None,
            privileged: bool = False) -> None:
        """``ctr run -d`` a busybox container running ``sleep 3600``."""
        flags = [f"--label={k}={v}" for k, v in (labels or {}).items()]
        if privileged:
            flags.append("--privileged")
        self.ctr("run", "-d", *flags, self.image, cid, *BUSYBOX_CMD, namespace=namespace)
        self.made.append((namespace, cid))

    def task_pid(self, cid: str, namespace: str = "default") -> int:
        out = self.ctr("tasks", "ls", namespace=namespace)
        for line in out.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return int(parts[1])
        raise LookupError(cid)

    def run_pod(self, name: str, namespace: str, uid: str, labels: dict[str, str],
                container: str, container_labels: dict[str, str] | None = None) -> tuple[str, str]:
        """A CRI pod sandbox (host network, cgroup ``/kubepods/besteffort/pod<uid>``) with one
        started container running ``sleep 3600``; (sandbox id, container id)."""
        from detector.state.runtimes.cri import CriClient
        from detector.state.runtimes.proto import cri_pb2 as pb

        node = pb.NamespaceOption(network=pb.NODE)
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid),
            log_directory=str(self.workdir / "pods" / uid), labels=labels,
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent.format(uid=uid),
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=node)),
        )
        cri = CriClient(str(self.socket), timeout=60)
        try:
            sandbox = cri.call("RunPodSandbox", pb.RunPodSandboxRequest(config=config),
                               pb.RunPodSandboxResponse).pod_sandbox_id
            self.pods.append(sandbox)
            cconf = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=container),
                image=pb.ImageSpec(image=self.image), command=BUSYBOX_CMD,
                labels=container_labels or {}, log_path=f"{container}.log",
                linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=node)),
            )
            cid = cri.call("CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=sandbox, config=cconf, sandbox_config=config),
                pb.CreateContainerResponse).container_id
            cri.call("StartContainer", pb.StartContainerRequest(container_id=cid),
                     pb.StartContainerResponse)
        finally:
            cri.close()
        return sandbox, cid

    def stop(self) -> None:
        for ns, cid in self.made:
            with contextlib.suppress(Exception):
                self.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=ns, timeout=20)
            with contextlib.suppress(Exception):
                self.ctr("tasks", "rm", "-f", cid, namespace=ns, timeout=20)
            with contextlib.suppress(Exception):
                self.ctr("containers", "rm", cid, namespace=ns, timeout=20)
        for pod in self.pods:
            with contextlib.suppress(Exception):
                from detector.state.runtimes.cri import CriClient
                from detector.state.runtimes.proto import cri_pb2 as pb

                cri = CriClient(str(self.socket), timeout=20)
                cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod),
                         pb.StopPodSandboxResponse)
                cri.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod),
                         pb.RemovePodSandboxResponse)
                cri.close()
        _stop(self.process)
        _kill_children_of_socket(self.socket)


def _containerd_config(workdir: Path, sandbox_image: str) -> Path:
    text = subprocess.run(["containerd", "config", "default"], capture_output=True, text=True,
                          check=True).stdout
    sock = workdir / "containerd.sock"
    repl = {
        r'(?m)^root = ".*"$': f'root = "{workdir / "root"}"',
        r'(?m)^state = ".*"$': f'state = "{workdir / "state"}"',
        r'(?m)^(\s*)address = "/run/containerd/containerd.sock"$': rf'\1address = "{sock}"',
        r'(?m)^(\s*)sandbox_image = ".*"$': rf'\1sandbox_image = "{sandbox_image}"',
        r'(?m)^(\s*)bin_dir = ".*"$': rf'\1bin_dir = "{workdir / "cni-bin"}"',
        r'(?m)^(\s*)conf_dir = ".*"$': rf'\1conf_dir = "{workdir / "cni-conf"}"',
        r'(?m)^(\s*)path = "/opt/containerd"$': rf'\1path = "{workdir / "opt"}"',
        r'(?m)^(\s*)stream_server_port = ".*"$': r'\1stream_server_port = "0"',
        # this machine refuses a lower oom_score_adj than the caller's (CRI asks -998)
        r'(?m)^(\s*)restrict_oom_score_adj = .*$': r'\1restrict_oom_score_adj = true',
    }
    for pattern, value in repl.items():
        text, n = re.subn(pattern, value, text)
        assert n >= 1, f"containerd default config has no {pattern}"
    path = workdir / "config.toml"
    path.write_text(text)
    return path


def start_containerd(workdir: Path) -> Containerd:
    """containerd with a private config (CRI on), the busybox image imported in both namespaces."""
    need_root()
    need_binary("containerd")
    need_binary("ctr")
    need_binary("runc")
    workdir.mkdir(parents=True, exist_ok=True)
    busybox_image(workdir / "image", tag=f"localhost/fpy-busybox:ctd-{os.getpid()}")
    # CRI needs an entrypoint in the sandbox image: the same rootfs with a command.
    image = f"localhost/fpy-busybox:cri-{os.getpid()}"
    podman("import", "--change", 'CMD ["/bin/sleep", "3600"]',
           str(workdir / "image" / "rootfs.tar"), image)
    archive = workdir / "busybox-oci.tar"
    podman("save", "--format", "oci-archive", "-o", str(archive), image)
    config = _containerd_config(workdir, image)
    log = workdir / "containerd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT)
    ctd = Containerd(workdir=workdir, socket=workdir / "containerd.sock", process=proc,
                     image=image)
    try:
        _wait_socket(ctd.socket, proc, "containerd", log)
        for ns in ("k8s.io", "default"):
            ctd.ctr("images", "import", "--all-platforms", str(archive), namespace=ns)
    except BaseException:
        ctd.stop()
        raise
    return ctd


@contextlib.contextmanager
def running_containerd(workdir: Path) -> Iterator[Containerd]:
    ctd = start_containerd(workdir)
    try:
        yield ctd
    finally:
        ctd.stop()


# -- Docker --------------------------------------------------------------------------------
@dataclass
class Docker:
    """A private ``dockerd`` (Debian docker.io): socket, data root and exec root under workdir."""

    workdir: Path
    socket: Path
    process: subprocess.Popen[bytes]
    image: str = ""
    made: list[str] = field(default_factory=list)

    def docker(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(["docker", "-H", f"unix://{self.socket}", *args],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def run(self, name: str, *extra: str) -> str:
        """``docker run -d`` a busybox container running ``sleep 3600``; its id."""
        cid = self.docker("run", "-d", "--name", name, "--network", "none", *extra, self.image,
                          *BUSYBOX_CMD).strip().splitlines()[-1]
        self.made.append(cid)
        return cid

    def stop(self) -> None:
        for cid in self.made:
            with contextlib.suppress(Exception):
                self.docker("rm", "-f", cid, timeout=30)
        _stop(self.process)
        _kill_children_of_socket(self.workdir / "exec")


def start_docker(workdir: Path) -> Docker:
    """dockerd on a private socket (no iptables, no bridge) with an imported busybox image."""
    need_root()
    need_binary("dockerd")
    need_binary("docker")
    workdir.mkdir(parents=True, exist_ok=True)
    busybox_image(workdir / "image", tag=f"localhost/fpy-busybox:dk-{os.getpid()}")
    sock = workdir / "docker.sock"
    log = workdir / "dockerd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["dockerd", "--host", f"unix://{sock}", "--data-root", str(workdir / "data"),
             "--exec-root", str(workdir / "exec"), "--pidfile", str(workdir / "docker.pid"),
             "--iptables=false", "--ip6tables=false", "--bridge=none"],
            stdout=out, stderr=subprocess.STDOUT)
    dk = Docker(workdir=workdir, socket=sock, process=proc,
                image=f"fpy/busybox:dk-{os.getpid()}")
    try:
        _wait_socket(sock, proc, "dockerd", log)
        dk.docker("import", str(workdir / "image" / "rootfs.tar"), dk.image)
    except BaseException:
        dk.stop()
        raise
    return dk


@contextlib.contextmanager
def running_docker(workdir: Path) -> Iterator[Docker]:
    dk = start_docker(workdir)
    try:
        yield dk
    finally:
        dk.stop()


def need_containerd() -> None:
    need(shutil.which("containerd") is not None, "containerd (Debian containerd)")


__all__ = ["Containerd", "Docker", "need_containerd", "running_containerd", "running_docker",
           "start_containerd", "start_docker"]
