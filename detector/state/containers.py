"""Containers: the id from a process's cgroup path, metadata from the runtimes' APIs.

``container.id`` is the first 12 hex digits of the 64-hex id found in the cgroup path
(field-semantics #9), ``host`` when there is none (containerd's named ids: below). Recognised
paths (any hierarchy line of cgroup v1, or the v2 line):

* podman: ``/libpod_parent/libpod-<id>``, ``/machine.slice/libpod-<id>.scope``
* docker: ``/docker/<id>``, ``/system.slice/docker-<id>.scope``
* cri-o: ``/crio-<id>.scope``, ``.../crio-<id>``
* containerd: ``/cri-containerd-<id>.scope``, ``/containerd/<id>``, and a containerd namespace
  ``/<namespace>/<id>`` (``/k8s.io/<id>``, ``/default/<id>``: ``ctr run``, nerdctl), where
  the id may also be a name of at most 64 characters (``ctr run ... test1``: ``container.id``
  is its first 12 characters, as the container plugin reports it)
* Kubernetes (any runtime): ``/kubepods/<qos>/pod<uid>/<id>`` (cgroupfs driver),
  ``/kubepods.slice/.../<runtime>-<id>.scope`` (systemd driver)

Metadata comes from :mod:`detector.state.runtimes` backends, asked in an order that depends on
the runtime the cgroup names: CRI (containerd, CRI-O) then containerd's own API for
containerd; the Docker-compatible API for docker and podman; podman's on-disk storage for
podman when no socket answers.

Never blocking the event loop but once per container: :meth:`ContainerManager.get` returns at
once a cached :class:`ContainerInfo` whose metadata fields stay ``None`` until a background
thread has filled them in place (``first_wait`` > 0 lets a caller wait that long, once per
container); the exec of the container's init waits for them, bounded (:meth:`settle`). A container
no backend answered for is asked again on a later sighting after 0.25, 0.5, 1... (at most 60)
seconds. Each container is looked up once when a backend answers: never once per event.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from detector.events import ContainerInfo
from detector.state.backends import Backend, backends_for, docker_backends
from detector.state.runtimes.docker import fill_from_inspect, inspect_container, split_image
from detector.state.runtimes.engines import Engines

log = logging.getLogger(__name__)

__all__ = ["HOST", "Backend", "CgroupPaths", "ContainerManager", "backends_for",
           "fill_from_inspect", "inspect_container", "parse_cgroup", "parse_cgroup_file",
           "parse_cgroup_path", "split_image"]  # fmt: skip

HOST = ContainerInfo(id="host", full_id="host", type="host", name="host")

_ID = r"([0-9a-f]{64})"
# (regex on one cgroup path, runtime type); the first match wins. A second group, when the
# pattern has one, is the containerd namespace.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/libpod-conmon-"), ""),  # conmon's own cgroup: not a container process
    (re.compile(r"(?:^|/)libpod-" + _ID + r"(?:\.scope)?(?:/|$)"), "podman"),
    (re.compile(r"(?:^|/)docker-" + _ID + r"\.scope(?:/|$)"), "docker"),
    (re.compile(r"(?:^|/)crio-(?:conmon-)?" + _ID + r"(?:\.scope)?(?:/|$)"), "cri-o"),
    (re.compile(r"(?:^|/)cri-containerd-" + _ID + r"\.scope(?:/|$)"), "containerd"),
    (re.compile(r"(?:^|/)kubepods[^/]*/(?:[^/]+/)*" + _ID + r"(?:/|$)"), "containerd"),
    (re.compile(r"(?:^|/)docker/" + _ID + r"(?:/|$)"), "docker"),
    (re.compile(r"(?:^|/)containerd/" + _ID + r"(?:/|$)"), "containerd"),
    (re.compile(r"^/([A-Za-z0-9][A-Za-z0-9._-]*)/" + _ID + r"(?:/|$)"), "containerd"),
]
# containerd's identifier grammar, for a namespace and for a container id of at most 64
_IDENT = r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*"
_NAMED = re.compile(rf"^/({_IDENT})/(?=.{{1,64}}$)({_IDENT})$")
_UNITS = (".service", ".slice", ".scope")
_NOT_CONTAINERD = frozenset({"docker", "libpod_parent", "kubepods"})


def parse_cgroup(path_or_text: str) -> tuple[str, str, str | None] | None:
    """(runtime type, id, containerd namespace or None) of a cgroup path or file text."""
    lines = path_or_text.splitlines()
    for line in lines:
        path = line.split(":", 2)[-1]
        if len(path) < 65:
            continue
        for pattern, kind in _PATTERNS:
            m = pattern.search(path)
            if m:
                if not kind:
                    return None
                groups = m.groups()
                if len(groups) == 2:
                    return kind, groups[1], groups[0]
                return kind, groups[0], None
    return _named_containerd(lines)


def _named_containerd(lines: list[str]) -> tuple[str, str, str | None] | None:
    """A containerd container whose id is a name (``ctr run ... test1``): ``/<ns>/<id>``.

    As the container plugin: an id of 1 to 64 identifier characters right after the namespace,
    the path not a systemd unit (``.service``, ``.slice``, ``.scope``). Read from the unified
    line (or a bare path) or the ``pids`` line only, where runc places every container: a group
    of one v1 controller (a job's memory limit) is not a container; nor are the namespaces
    other runtimes use (conmon's ``/libpod_parent/conmon``, ``/docker/<not 64 hex>``).
    """
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1] not in ("", "pids"):
            continue
        m = _NAMED.match(parts[-1])
        if m and m.group(1) not in _NOT_CONTAINERD and not m.group(2).endswith(_UNITS):
            return "containerd", m.group(2), m.group(1)
    return None


def parse_cgroup_path(path: str) -> tuple[str, str] | None:
    """(runtime type, 64-hex id) of the container a cgroup path belongs to, or None (host)."""
    found = parse_cgroup(path)
    return None if found is None else (found[0], found[1])


def parse_cgroup_file(text: str) -> tuple[str, str] | None:
    """(runtime type, id) from the text of /proc/PID/cgroup (``hier:controllers:path`` lines)."""
    return parse_cgroup_path(text)


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


@dataclass
class _Pending:
    info: ContainerInfo
    done: threading.Event
    namespace: str | None = None
    attempts: int = 0
    retry_at: float = 0.0  # monotonic time after which a failed fetch is tried again
    announced: bool = False  # its ``container`` event was made
    settled: bool = False  # its init's exec waited for the metadata (``settle``)


class ContainerManager:
    """Cache of containers by id; metadata fetched by one background thread."""

    def __init__(
        self,
        *,
        sockets: Iterable[tuple[str, str]] | None = None,
        engines: Engines | None = None,
        backends: list[Backend] | None = None,
        first_wait: float = 0.0,
        fetch: bool = True,
        max_containers: int = 4096,
    ) -> None:
        if backends is None:
            backends = (docker_backends(sockets) if sockets is not None
                        else backends_for(engines or Engines()))
        self.backends = backends
        self.first_wait = first_wait
        self.fetch = fetch
        self.max_containers = max_containers
        self._by_id: dict[str, _Pending] = {}
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fetch_errors = 0
        self.lookups = 0  # backend calls made (the benchmark counts them per container)

    def get(self, kind: str, full_id: str, *, wait: bool = True,
            namespace: str | None = None) -> ContainerInfo:
        """The container with this id; the first sighting queues a metadata fetch."""
        short = full_id[:12]
        entry = self._by_id.get(short)
        if entry is not None:
            if entry.retry_at and time.monotonic() >= entry.retry_at and entry.done.is_set():
                entry.retry_at = 0.0  # no backend answered before: ask again
                self._enqueue(entry)
            return entry.info
        info = ContainerInfo(id=short, full_id=full_id, type=kind)
        entry = _Pending(info, threading.Event(), namespace)
        if len(self._by_id) >= self.max_containers:
            self._by_id.pop(next(iter(self._by_id)))
        self._by_id[short] = entry
        if not self.fetch or not self.backends:
            entry.done.set()
            return info
        self._enqueue(entry)
        if wait and self.first_wait > 0:
            entry.done.wait(self.first_wait)
        return info

    def is_new(self, container_id: str) -> bool:
        """True once per container: the first time a caller asks (the ``container`` event)."""
        entry = self._by_id.get(container_id)
        if entry is None or entry.announced:
            return False
        entry.announced = True
        return True

    def started(self, container_id: str) -> None:
        """Its first process started: ask again if no backend knew the container before."""
        entry = self._by_id.get(container_id[:12])
        if entry is not None and entry.done.is_set() and entry.info.name is None:
            entry.retry_at = 0.0
            self.refresh(container_id)

    def settle(self, container_id: str, timeout: float) -> None:
        """Its init process execs (Falco's ``container_started``: the first exec of vpid 1):
        wait up to ``timeout`` seconds for its metadata, once per container, so that a rule on
        a container's start (``Launch Privileged Container``) sees what the container is. A
        fetch that failed before (the runtime had not written the container yet) is retried."""
        entry = self._by_id.get(container_id[:12])
        if entry is None or entry.settled or not self.fetch or not self.backends:
            return
        entry.settled = True
        deadline = time.monotonic() + timeout
        entry.done.wait(timeout)  # a fetch in flight
        left = deadline - time.monotonic()
        if left > 0:
            self.started(container_id)  # a failed fetch is asked again
            entry.done.wait(left)

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
        """Fetch a container's metadata again (it started, or its first fetch failed)."""
        entry = self._by_id.get(container_id[:12])
        if entry is not None and self.fetch and self.backends and entry.done.is_set():
            self._enqueue(entry)

    def close(self) -> None:
        """Stop the background thread and close the runtime connections."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join(5)
        for b in self.backends:
            b.close()

    def _enqueue(self, entry: _Pending) -> None:
        entry.done.clear()
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._run, name="container-metadata", daemon=True
                    )
                    self._worker.start()
        self._queue.put(entry)

    def _ordered(self, kind: str | None) -> list[Backend]:
        first = [b for b in self.backends if kind in b.kinds]
        return first + [b for b in self.backends if kind not in b.kinds]

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            try:
                if not self._fetch_one(entry):
                    entry.attempts += 1
                    entry.retry_at = time.monotonic() + min(60.0, 0.125 * 2.0**entry.attempts)
            except Exception:  # a backend bug must not end metadata for every container
                log.exception("container %s: metadata fetch failed", entry.info.id)
            finally:
                entry.done.set()

    def _fetch_one(self, entry: _Pending) -> bool:
        info = entry.info
        for b in self._ordered(info.type):
            self.lookups += 1
            try:
                b.fetch(info, entry.namespace)
            except (OSError, LookupError, ValueError) as exc:
                log.debug("container %s: %s: %s", info.id, b.name, exc)
                continue
            if b.sets_type:
                info.type = b.sets_type
            return True
        self.fetch_errors += 1
        return False
