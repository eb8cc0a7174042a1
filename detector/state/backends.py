"""Where container metadata comes from: one :class:`Backend` per runtime socket or storage.

A backend's client (and its gRPC or sqlite module: about 20 MiB for gRPC) is made on the first
container it is asked about, so a node without containers never loads them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from detector.events import ContainerInfo
from detector.state.runtimes.engines import Engines

__all__ = ["Backend", "backends_for", "docker_backends"]


@dataclass
class Backend:
    """One place metadata comes from: a runtime socket or podman's storage."""

    name: str  # "cri:/run/containerd/containerd.sock"
    kinds: frozenset[str]  # container types it is asked first for
    fetch: Callable[[ContainerInfo, str | None], None]  # LookupError: unknown; OSError: down
    close: Callable[[], None]
    sets_type: str | None = None  # the container type it proves (cri-o for CRI-O's socket)


def backends_for(engines: Engines) -> list[Backend]:
    """The backends an :class:`Engines` names, in the order they are asked. A client (and its
    gRPC or sqlite module: about 20 MiB for gRPC) is made on the first container it is asked
    about, so a node without containers never loads them."""
    t = engines.timeout
    out: list[Backend] = []
    for path in engines.cri:
        cri = _Lazy(functools.partial(_cri, path, t))
        out.append(Backend(f"cri:{path}", frozenset({"containerd", "cri-o"}),
                           cri.fetch_ignoring_ns, cri.close,
                           "cri-o" if "crio" in path else "containerd"))
    for path in dict.fromkeys(engines.containerd):
        ctd = _Lazy(functools.partial(_containerd, path, t))
        out.append(Backend(f"containerd:{path}", frozenset({"containerd"}), ctd.fetch,
                           ctd.close, "containerd"))
    out += docker_backends([("podman", p) for p in engines.podman], t)
    out += docker_backends([("docker", p) for p in engines.docker], t)
    if engines.podman_storage:
        root = engines.podman_storage
        store = _Lazy(functools.partial(_podman_storage, root))
        out.append(Backend(f"podman-storage:{root}", frozenset({"podman"}),
                           store.fetch_ignoring_ns, store.close))
    return out


def _cri(path: str, timeout: float) -> Any:
    from detector.state.runtimes.cri import CriClient

    return CriClient(path, timeout=timeout)


def _containerd(path: str, timeout: float) -> Any:
    from detector.state.runtimes.containerd import ContainerdClient

    return ContainerdClient(path, timeout=timeout)


def _podman_storage(root: str) -> Any:
    from detector.state.runtimes.podman_storage import PodmanStorage

    return PodmanStorage(root)


class _Lazy:
    """A runtime client made on its first fetch (from the one metadata thread)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def fetch(self, info: ContainerInfo, namespace: str | None) -> None:
        """The client's ``fetch(info, namespace)``."""
        self._get().fetch(info, namespace)

    def fetch_ignoring_ns(self, info: ContainerInfo, namespace: str | None) -> None:
        """The client's ``fetch(info)``: it has no namespaces."""
        self._get().fetch(info)

    def close(self) -> None:
        """Close the client if it was ever made."""
        with self._lock:
            if self._client is not None:
                self._client.close()


def _nothing() -> None:
    """Nothing to close."""


def docker_backends(sockets: Iterable[tuple[str, str]], timeout: float = 2.0) -> list[Backend]:
    from detector.state.runtimes import docker

    def api(path: str) -> Callable[[ContainerInfo, str | None], None]:
        def call(info: ContainerInfo, namespace: str | None) -> None:
            docker.fetch(path, info, timeout=timeout)
        return call

    return [Backend(f"{kind}:{path}", frozenset({kind}), api(path), _nothing)
            for kind, path in sockets]
