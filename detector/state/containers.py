"""Containers: the id from a process's cgroup path, metadata from the runtime's API socket.

``container.id`` is the first 12 hex digits of the 64-hex id found in the cgroup path
(field-semantics #9), ``host`` when there is none. Recognised paths (any hierarchy line):

* podman: ``/libpod_parent/libpod-<id>``, ``/machine.slice/libpod-<id>.scope``
* docker: ``/docker/<id>``, ``/system.slice/docker-<id>.scope``
* cri-o: ``/crio-<id>.scope``, ``.../crio-<id>``
* containerd: ``/cri-containerd-<id>.scope``, ``/containerd/<id>``, ``/<namespace>/<id>``
* Kubernetes (any runtime): ``/kubepods/<qos>/pod<uid>/<id>``,
  ``/kubepods.slice/.../<runtime>-<id>.scope``

Metadata (name, image, repository, tag, image id, privileged, labels, start time, mounts) comes
from the Docker-compatible API (``GET /containers/<id>/json``) of podman
(``/run/podman/podman.sock``) or Docker (``/var/run/docker.sock``), spoken over a real unix
socket with the standard library's HTTP client. CRI runtimes (containerd, cri-o) speak gRPC,
which is not implemented: their containers get an id and type, and metadata only when a
Docker-compatible socket knows them.

Never blocking the event loop: :meth:`ContainerManager.get` returns at once a cached
:class:`ContainerInfo` whose metadata fields stay ``None`` until a background thread has filled
them in place. The one exception is the first sighting of a container, where the caller may wait
up to ``first_wait`` seconds (default 0.2 s, once per container) so that the first alert of a new
container already names it; a runtime that does not answer in time fills the fields later. A
fetch that no runtime answered is tried again on a later sighting, after 2, 4, 8... (at most 60)
seconds.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.events import ContainerInfo

log = logging.getLogger(__name__)

HOST = ContainerInfo(id="host", full_id="host", type="host", name="host")

_ID = r"([0-9a-f]{64})"
# (regex on one cgroup path, runtime type); the first match wins.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/libpod-conmon-"), ""),  # conmon's own cgroup: not a container process
    (re.compile(r"(?:^|/)libpod-" + _ID + r"(?:\.scope)?(?:/|$)"), "podman"),
    (re.compile(r"(?:^|/)docker-" + _ID + r"\.scope(?:/|$)"), "docker"),
    (re.compile(r"(?:^|/)crio-(?:conmon-)?" + _ID + r"(?:\.scope)?(?:/|$)"), "cri-o"),
    (re.compile(r"(?:^|/)cri-containerd-" + _ID + r"\.scope(?:/|$)"), "containerd"),
    (re.compile(r"(?:^|/)kubepods[^/]*/(?:[^/]+/)*" + _ID + r"(?:/|$)"), "containerd"),
    (re.compile(r"(?:^|/)docker/" + _ID + r"(?:/|$)"), "docker"),
    (re.compile(r"(?:^|/)containerd/" + _ID + r"(?:/|$)"), "containerd"),
]

DEFAULT_SOCKETS: list[tuple[str, str]] = [
    ("podman", "/run/podman/podman.sock"),
    ("docker", "/var/run/docker.sock"),
]


def parse_cgroup_path(path: str) -> tuple[str, str] | None:
    """(runtime type, 64-hex id) of the container a cgroup path belongs to, or None (host)."""
    for pattern, kind in _PATTERNS:
        m = pattern.search(path)
        if m:
            if not kind:
                return None
            return kind, m.group(1)
    return None


def parse_cgroup_file(text: str) -> tuple[str, str] | None:
    """(runtime type, id) from the text of /proc/PID/cgroup (``hier:controllers:path`` lines)."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if len(path) > 64:
            found = parse_cgroup_path(path)
            if found:
                return found
    return None


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference such as ``localhost/busybox:latest``."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1 :]
    return image, tag, digest


def _parse_time(text: str | None) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nanosecond digits."""
    if not text or text.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    base, frac, zone = m.groups()
    zone = "+00:00" if zone == "Z" else zone
    secs = int(datetime.fromisoformat(base + zone).timestamp())
    return secs * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))


def fill_from_inspect(info: ContainerInfo, data: dict[str, Any]) -> None:
    """Set ``info``'s metadata from a Docker-compatible ``/containers/<id>/json`` answer."""
    config = data.get("Config") or {}
    host_config = data.get("HostConfig") or {}
    image = config.get("Image") or data.get("ImageName") or ""
    repo, tag, digest = split_image(image) if image else (None, None, None)
    image_id = str(data.get("Image") or "")
    info.labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    info.mounts = [
        (str(m.get("Source", "")), str(m.get("Destination", "")))
        for m in data.get("Mounts") or []
        if isinstance(m, dict)
    ]
    info.privileged = bool(host_config.get("Privileged", False))
    info.start_ts = _parse_time((data.get("State") or {}).get("StartedAt")) or _parse_time(
        data.get("Created")
    )
    info.image_id = image_id.removeprefix("sha256:")[:12] or None
    info.image_digest = digest
    info.image_repository = repo
    info.image_tag = tag or ("latest" if repo else None)
    info.image = image or None
    # The name goes last: a reader that sees a name sees the rest too.
    info.name = str(data.get("Name") or "").lstrip("/") or None


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup v2 (unified) hierarchy is mounted, if it is."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.startswith("cgroup2 "):
                    return left.split()[4]
    except OSError:
        pass
    return None


class CgroupPaths:
    """cgroup v2 id -> path: a cgroup's id is its directory's inode number in cgroup2.

    The kernel reports the id with each event (``bpf_get_current_cgroup_id``), so a process's
    container is known even when it has already exited and its /proc entry is gone.
    """

    def __init__(self, mount: str | None = None, *, min_rescan_s: float = 0.05) -> None:
        self.mount = mount if mount is not None else cgroup2_mount()
        self.min_rescan_s = min_rescan_s
        self._paths: dict[int, str] = {}
        self._last_scan = -1e9

    def path(self, cgroup_id: int) -> str | None:
        """The cgroup's path (``/libpod_parent/libpod-<id>``), or None if unknown."""
        found = self._paths.get(cgroup_id)
        if found is None and self.mount and time.monotonic() - self._last_scan > self.min_rescan_s:
            self.scan()
            found = self._paths.get(cgroup_id)
        return found

    def scan(self) -> None:
        """Read every cgroup directory's inode number."""
        self._last_scan = time.monotonic()
        if not self.mount:
            return
        paths: dict[int, str] = {}
        try:
            paths[os.stat(self.mount).st_ino] = "/"
        except OSError:
            return
        stack = [(self.mount, "", 0)]
        while stack:
            top, rel, depth = stack.pop()
            try:
                entries = list(os.scandir(top))
            except OSError:
                continue
            for entry in entries:
                if depth < 16 and entry.is_dir(follow_symlinks=False):
                    child = f"{rel}/{entry.name}"
                    paths[entry.inode()] = child
                    stack.append((entry.path, child, depth + 1))
        self._paths = paths


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def inspect_container(sock_path: str, full_id: str, *, timeout: float = 2.0) -> dict[str, Any]:
    """The runtime's ``GET /containers/<id>/json`` answer; raises OSError or LookupError."""
    conn = _UnixHTTPConnection(sock_path, timeout)
    try:
        conn.request("GET", f"/v1.40/containers/{full_id}/json")
        resp = conn.getresponse()
        body = resp.read()
    except http.client.HTTPException as exc:
        raise OSError(f"bad answer from {sock_path}: {exc}") from exc
    finally:
        conn.close()
    if resp.status == 404:
        raise LookupError(f"{full_id[:12]} unknown to {sock_path}")
    if resp.status != 200:
        raise OSError(f"{sock_path} answered HTTP {resp.status}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise OSError(f"{sock_path} answered a non-object")
    return data


@dataclass
class _Pending:
    info: ContainerInfo
    done: threading.Event
    attempts: int = 0
    retry_at: float = 0.0  # monotonic time after which a failed fetch is tried again


class ContainerManager:
    """Cache of containers by id; metadata fetched by one background thread."""

    def __init__(
        self,
        *,
        sockets: Iterable[tuple[str, str]] | None = None,
        first_wait: float = 0.2,
        fetch: bool = True,
        max_containers: int = 4096,
    ) -> None:
        self.sockets = list(DEFAULT_SOCKETS if sockets is None else sockets)
        self.first_wait = first_wait
        self.fetch = fetch
        self.max_containers = max_containers
        self._by_id: dict[str, _Pending] = {}
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fetch_errors = 0

    def get(self, kind: str, full_id: str, *, wait: bool = True) -> ContainerInfo:
        """The container with this id; the first sighting queues a metadata fetch."""
        short = full_id[:12]
        entry = self._by_id.get(short)
        if entry is not None:
            if entry.retry_at and time.monotonic() >= entry.retry_at and entry.done.is_set():
                entry.retry_at = 0.0  # the runtime did not answer before: ask again
                entry.done.clear()
                self._start_worker()
                self._queue.put(entry)
            return entry.info
        info = ContainerInfo(id=short, full_id=full_id, type=kind)
        entry = _Pending(info, threading.Event())
        if len(self._by_id) >= self.max_containers:
            self._by_id.pop(next(iter(self._by_id)))
        self._by_id[short] = entry
        if not self.fetch or not self.sockets:
            entry.done.set()
            return info
        self._start_worker()
        self._queue.put(entry)
        if wait and self.first_wait > 0:
            entry.done.wait(self.first_wait)
        return info

    def put(self, info: ContainerInfo) -> None:
        """Add a container known from elsewhere (a capture file); no fetch."""
        entry = _Pending(info, threading.Event())
        entry.done.set()
        self._by_id[info.id] = entry

    def known(self) -> list[ContainerInfo]:
        """Every container seen so far."""
        return [e.info for e in list(self._by_id.values())]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued fetch is done (tests, start-up); True when all are."""
        deadline = time.monotonic() + timeout
        for entry in list(self._by_id.values()):
            if not entry.done.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def refresh(self, container_id: str) -> None:
        """Fetch a container's metadata again (its first fetch failed or it changed)."""
        entry = self._by_id.get(container_id[:12])
        if entry is not None and self.fetch:
            entry.done.clear()
            self._start_worker()
            self._queue.put(entry)

    def close(self) -> None:
        """Stop the background thread."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join(5)

    def _start_worker(self) -> None:
        if self._worker is not None:
            return
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="container-metadata", daemon=True
                )
                self._worker.start()

    def _ordered_sockets(self, kind: str | None) -> list[str]:
        first = [p for k, p in self.sockets if k == kind]
        return first + [p for k, p in self.sockets if k != kind]

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            try:
                if not self._fetch_one(entry.info):
                    entry.attempts += 1
                    entry.retry_at = time.monotonic() + min(60.0, 2.0**entry.attempts)
            finally:
                entry.done.set()

    def _fetch_one(self, info: ContainerInfo) -> bool:
        for path in self._ordered_sockets(info.type):
            try:
                data = inspect_container(path, info.full_id)
            except (OSError, LookupError, ValueError) as exc:
                log.debug("container %s: %s", info.id, exc)
                continue
            fill_from_inspect(info, data)
            return True
        self.fetch_errors += 1
        return False
