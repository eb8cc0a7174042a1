"""The Kubernetes CRI API (``runtime.v1.RuntimeService``): containerd's and CRI-O's metadata.

``ContainerStatus`` (verbose) gives the container's name (the pod spec's container name), image,
image digest and id, labels, mounts and start time; its ``info`` JSON gives the pod sandbox id and
whether the container is privileged. ``PodSandboxStatus`` (verbose) gives the pod's name,
namespace, uid, labels, IP and the CNI result. Sandboxes are cached: containers of one pod ask
for it once.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from detector.events import ContainerInfo
from detector.state.runtimes.docker import set_image, split_image
from detector.state.runtimes.grpcunix import GrpcUnix, json_object, not_found
from detector.state.runtimes.proto import cri_pb2 as pb

SERVICE = "/runtime.v1.RuntimeService/"


class CriClient:
    """A CRI runtime on one unix socket."""

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        self.rpc = GrpcUnix(path, timeout=timeout)
        self._pods: dict[str, pb.PodSandboxStatusResponse] = {}

    @property
    def path(self) -> str:
        """The socket path."""
        return self.rpc.path

    def call(self, name: str, request: Any, response_type: Any) -> Any:
        """A RuntimeService method by name (tests use it to make pods and containers)."""
        return self.rpc.call(SERVICE + name, request, response_type)

    def container_status(self, full_id: str) -> pb.ContainerStatusResponse:
        """``ContainerStatus`` with ``verbose``; raises grpc.RpcError."""
        resp: pb.ContainerStatusResponse = self.call("ContainerStatus",
                         pb.ContainerStatusRequest(container_id=full_id, verbose=True),
                         pb.ContainerStatusResponse)
        return resp

    def pod_status(self, sandbox_id: str) -> pb.PodSandboxStatusResponse:
        """``PodSandboxStatus`` with ``verbose``, cached per sandbox; raises grpc.RpcError."""
        found: pb.PodSandboxStatusResponse | None = self._pods.get(sandbox_id)
        if found is None:
            found = self.call("PodSandboxStatus",
                              pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
                              pb.PodSandboxStatusResponse)
            if len(self._pods) > 1024:
                self._pods.clear()
            self._pods[sandbox_id] = found
        return found

    def fetch(self, info: ContainerInfo) -> None:
        """Fill ``info``; LookupError if the runtime does not know it, OSError if unreachable."""
        try:
            status = self.container_status(info.full_id)
        except grpc.RpcError as err:
            raise _error(err, self.path, info.id) from None
        extra = _info_json(status.info, self.path)
        sandbox = str(extra.get("sandboxID") or "")
        pod = None
        if sandbox:
            try:
                pod = self.pod_status(sandbox)
            except grpc.RpcError as err:
                if not not_found(err):
                    raise _error(err, self.path, sandbox[:12]) from None
        fill_from_cri(info, status, extra, pod, self.path)

    def close(self) -> None:
        self.rpc.close()


def _error(err: grpc.RpcError, path: str, what: str) -> Exception:
    if not_found(err):
        return LookupError(f"{what} unknown to CRI at {path}")
    return OSError(f"CRI at {path}: {err.code() if hasattr(err, 'code') else err}")


def _info_json(info: Any, where: str) -> dict[str, Any]:
    """The ``info`` JSON of a verbose CRI status (``{}`` when absent or not an object)."""
    return json_object(info.get("info") if info else None, where=where)


def _privileged(extra: dict[str, Any]) -> bool:
    """containerd: ``config.linux.security_context.privileged``; CRI-O: ``privileged``."""
    if "privileged" in extra:
        return bool(extra["privileged"])
    ctx = ((extra.get("config") or {}).get("linux") or {}).get("security_context") or {}
    return bool(ctx.get("privileged", False))


def fill_from_cri(info: ContainerInfo, resp: pb.ContainerStatusResponse, extra: dict[str, Any],
                  pod: pb.PodSandboxStatusResponse | None, where: str) -> None:
    """Set ``info``'s container and pod fields from CRI status answers."""
    st = resp.status
    image = st.image.image
    digest = split_image(st.image_ref)[2] if "@" in st.image_ref else None
    if image.startswith("sha256:") and st.image_ref:
        image = st.image_ref
    info.labels = dict(sorted(st.labels.items()))  # protobuf maps have no order
    info.mounts = [(m.host_path, m.container_path) for m in st.mounts]
    info.privileged = _privileged(extra)
    info.start_ts = st.started_at or st.created_at or None
    info.image_digest = digest
    set_image(info, image, st.image_id or (extra.get("imageRef") or "") or st.image_ref)
    if digest and not info.image_id:
        info.image_id = digest.removeprefix("sha256:")[:12]
    if pod is not None:
        ps = pod.status
        info.pod_sandbox_id = ps.id
        info.pod_name = ps.metadata.name or None
        info.pod_namespace = ps.metadata.namespace or None
        info.pod_uid = ps.metadata.uid or None
        info.pod_labels = dict(sorted(ps.labels.items()))
        info.pod_ip = ps.network.ip or None
        pextra = _info_json(pod.info, where)
        cni = pextra.get("cniResult")
        info.pod_cni_json = json.dumps(cni, separators=(",", ":")) if cni else None
    else:
        labels = st.labels
        info.pod_name = labels.get("io.kubernetes.pod.name")
        info.pod_namespace = labels.get("io.kubernetes.pod.namespace")
        info.pod_uid = labels.get("io.kubernetes.pod.uid")
    info.name = st.metadata.name or None
