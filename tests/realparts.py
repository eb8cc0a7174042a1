"""Starting the real parts tests use: a registry, an index server, and the checks for root/BPF.

A missing part skips the test with a one-line reason, except when ``FALCOCTL_PY_REQUIRE_REAL=1``
(set by ``.ci/run``): then it fails.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.eventually import eventually

REQUIRE_REAL = os.environ.get("FALCOCTL_PY_REQUIRE_REAL") == "1"


def need(condition: bool, what: str) -> None:
    """Skip (or fail under FALCOCTL_PY_REQUIRE_REAL=1) unless ``condition`` holds."""
    if condition:
        return
    if REQUIRE_REAL:
        pytest.fail(f"required real part is missing: {what}", pytrace=False)
    pytest.skip(f"missing: {what}")


def need_binary(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} on PATH (run `make install-test`)")
    assert path is not None
    return path


def need_root() -> None:
    need(os.geteuid() == 0, "root (tests of the kernel event source run as root)")


def need_bpf() -> None:
    """Root, and the kernel prepared for BCC (runs ``driver install`` when something lacks)."""
    need_root()
    from detector import driver

    try:
        driver.ensure_ready()
    except Exception as exc:  # a failed install shows up as the failed checks below
        need(False, f"driver install: {exc}")
    failed = [f"{c.name} ({c.detail})" for c in driver.check().checks if not c.ok]
    need(not failed, "eBPF prerequisites: " + ", ".join(failed))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    eventually(listening, timeout=timeout, interval=0.05,
               what=f"something listening on 127.0.0.1:{port}")


@dataclass
class Registry:
    """A running Debian docker-registry (CNCF distribution 2.8) on loopback."""

    host: str  # "127.0.0.1:PORT"
    root: Path  # storage root directory
    config: Path
    process: subprocess.Popen[bytes] | None
    plain_http: bool
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None

    def ref(self, repo: str, tag: str | None = None) -> str:
        return f"{self.host}/{repo}" + (f":{tag}" if tag else "")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def start(self) -> None:
        """(Re)start the registry on the same port and storage."""
        binary = need_binary("docker-registry")
        log = open(self.root.parent / "registry.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [binary, "serve", str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        wait_for_port(int(self.host.rsplit(":", 1)[1]))


def start_registry(
    workdir: Path,
    *,
    htpasswd: tuple[str, str] | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    port: int | None = None,
) -> Registry:
    """Start docker-registry; ``tls`` is (cert, key, ca) files, ``htpasswd`` (user, password)."""
    need_binary("docker-registry")
    port = port or free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: falcoctl-py-tests",
    ]
    if tls is not None:
        cert, key, _ca = tls
        lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
    if htpasswd is not None:
        need_binary("htpasswd")
        user, password = htpasswd
        pwfile = workdir / "htpasswd"
        subprocess.run(
            ["htpasswd", "-Bbc", str(pwfile), user, password], check=True, capture_output=True
        )
        lines += ["auth:", "  htpasswd:", "    realm: falcoctl-py", f"    path: {pwfile}"]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    reg = Registry(
        host=f"127.0.0.1:{port}",
        root=storage,
        config=config,
        process=None,
        plain_http=tls is None,
        ca_file=tls[2] if tls else None,
        username=htpasswd[0] if htpasswd else None,
        password=htpasswd[1] if htpasswd else None,
    )
    reg.start()
    return reg


@contextlib.contextmanager
def running_registry(workdir: Path, **kwargs: object) -> Iterator[Registry]:
    reg = start_registry(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        yield reg
    finally:
        reg.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class FileServer:
    """Python's own HTTP server serving a directory on loopback."""

    root: Path
    url: str
    server: http.server.ThreadingHTTPServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_file_server(root: Path) -> FileServer:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    return FileServer(root=root, url=f"http://127.0.0.1:{port}", server=server)


# -- podman (Debian podman + runc) ----------------------------------------------------------
PODMAN_BASE = ["--runtime", "runc", "--cgroup-manager=cgroupfs"]
PODMAN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BUSYBOX_APPLETS = ["sh", "sleep", "uptime", "cat", "ls", "id", "ps", "echo", "true"]


def podman(*args: str, check: bool = True, timeout: float = 60) -> str:
    """Run ``podman --runtime runc --cgroup-manager=cgroupfs ARGS``; its stdout."""
    binary = need_binary("podman")
    need_binary("runc")
    proc = subprocess.run(
        [binary, *PODMAN_BASE, *args], capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def busybox_image(workdir: Path, tag: str | None = None) -> str:
    """A local image made with ``podman import`` of a busybox-static rootfs; its name."""
    need_root()
    tag = tag or f"localhost/falcoctl-py-busybox:test-{os.getpid()}"
    busybox = Path("/bin/busybox")
    need(busybox.exists(), "/bin/busybox (Debian busybox-static)")
    root = workdir / "rootfs"
    for sub in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nfpyuser:x:4242:4242:fpy:/tmp:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nfpygroup:x:4242:\n")
    tarball = workdir / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
    podman("import", str(tarball), tag)
    return tag


@dataclass
class Container:
    """A running podman container (``sleep infinity`` in a busybox image)."""

    id: str  # 64 hex
    name: str
    image: str
    pid: int  # host pid of its first process

    def exec(self, *argv: str, tty: bool = False) -> subprocess.CompletedProcess[str]:
        flags = ["-t"] if tty else []
        binary = need_binary("podman")
        return subprocess.run(
            [binary, *PODMAN_BASE, "exec", *flags, self.name, *argv],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.id, check=False)


def start_container(image: str, name: str, *extra: str) -> Container:
    """``podman run -d`` a container running ``sleep infinity``."""
    podman("rm", "-f", "-t", "0", name, check=False)
    cid = podman("run", "-d", "--name", name, *PODMAN_LIMITS, *extra, image,
                 "sleep", "infinity").strip().splitlines()[-1]
    pid = int(podman("inspect", "-f", "{{.State.Pid}}", cid).strip())
    return Container(id=cid, name=name, image=image, pid=pid)


@dataclass
class PodmanService:
    """``podman system service``: the Docker-compatible API on a unix socket."""

    socket: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_podman_service(sock: Path) -> PodmanService:
    """Start ``podman system service --time=0 unix://SOCK`` and wait for its socket."""
    binary = need_binary("podman")
    log = open(sock.parent / "podman-service.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [binary, *PODMAN_BASE, "system", "service", "--time=0", f"unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"podman system service exited ({proc.returncode}) before "
                               f"listening on {sock}")
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            return True
        return False

    try:
        eventually(up, timeout=20, interval=0.05, what=f"podman system service on {sock}")
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    return PodmanService(socket=sock, process=proc)
