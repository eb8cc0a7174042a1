"""containerd's own API: namespaced containers (``ctr run``, nerdctl) that CRI does not know.

``containerd.services.containers.v1.Containers/Get`` in the container's namespace (the
``containerd-namespace`` request header) gives its labels, image name and OCI runtime spec
(mounts; privileged when the spec grants every capability and masks no path, which is what
``ctr run --privileged`` writes); ``containerd.services.images.v1.Images/Get`` gives the
image's digest. The namespace comes from the cgroup path (``/<namespace>/<id>``) when known,
else ``k8s.io``, ``default`` and ``moby`` are tried.
"""

from __future__ import annotations

from typing import Any

import grpc

from detector.events import ContainerInfo
from detector.state.runtimes.docker import set_image
from detector.state.runtimes.grpcunix import GrpcUnix, json_object, not_found
from detector.state.runtimes.proto import containerd_images_pb2 as ipb
from detector.state.runtimes.proto import containerd_pb2 as cpb

GET_CONTAINER = "/containerd.services.containers.v1.Containers/Get"
GET_IMAGE = "/containerd.services.images.v1.Images/Get"
NAMESPACES = ("k8s.io", "default", "moby")
_ALL_CAPS = 38  # CAP_CHECKPOINT_RESTORE is 40; every kernel since 5.9 has at least 38


class ContainerdClient:
    """containerd on one unix socket."""

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        self.rpc = GrpcUnix(path, timeout=timeout)

    @property
    def path(self) -> str:
        """The socket path."""
        return self.rpc.path

    def get(self, namespace: str, full_id: str) -> cpb.Container:
        """The container in ``namespace``; raises grpc.RpcError."""
        resp = self.rpc.call(GET_CONTAINER, cpb.GetContainerRequest(id=full_id),
                             cpb.GetContainerResponse, (("containerd-namespace", namespace),))
        found: cpb.Container = resp.container
        return found

    def image_digest(self, namespace: str, name: str) -> str | None:
        """The digest of the image named ``name`` (None if unknown)."""
        try:
            resp = self.rpc.call(GET_IMAGE, ipb.GetImageRequest(name=name),
                                 ipb.GetImageResponse, (("containerd-namespace", namespace),))
        except grpc.RpcError:
            return None
        return resp.image.target.digest or None

    def fetch(self, info: ContainerInfo, namespace: str | None = None) -> None:
        """Fill ``info``; LookupError if no namespace has it, OSError if unreachable."""
        tried = (namespace,) if namespace else NAMESPACES
        for ns in tried:
            try:
                found = self.get(ns, info.full_id)
            except grpc.RpcError as err:
                if not_found(err):
                    continue
                raise OSError(f"containerd at {self.path}: {err.code()}") from None
            fill_from_containerd(info, found, self.image_digest(ns, found.image), self.path)
            return
        raise LookupError(f"{info.id} unknown to containerd at {self.path}")

    def close(self) -> None:
        self.rpc.close()


def spec_privileged(spec: dict[str, Any]) -> bool:
    """An OCI spec a privileged container gets: every capability, no masked paths."""
    caps = ((spec.get("process") or {}).get("capabilities") or {}).get("effective") or []
    linux = spec.get("linux") or {}
    return len(caps) >= _ALL_CAPS and not linux.get("maskedPaths")


def fill_from_containerd(info: ContainerInfo, c: cpb.Container, digest: str | None,
                         where: str) -> None:
    """Set ``info``'s metadata from a containerd container record."""
    spec = json_object(c.spec.value, where=where)
    info.labels = dict(sorted(c.labels.items()))
    info.mounts = [(str(m.get("source", "")), str(m.get("destination", "")))
                   for m in spec.get("mounts") or [] if isinstance(m, dict)
                   and str(m.get("source", "")).startswith("/")]
    info.privileged = spec_privileged(spec)
    created = c.created_at
    info.start_ts = created.seconds * 1_000_000_000 + created.nanos or None
    info.image_digest = digest
    set_image(info, c.image, digest)
    info.pod_name = c.labels.get("io.kubernetes.pod.name")
    info.pod_namespace = c.labels.get("io.kubernetes.pod.namespace")
    info.pod_uid = c.labels.get("io.kubernetes.pod.uid")
    # ctr and nerdctl name containers by their id; nerdctl keeps the name in a label.
    info.name = c.labels.get("nerdctl/name") or c.id
