"""The Docker-compatible API (Docker, podman's service): ``GET /containers/<id>/json``.

Spoken over a real unix socket with the standard library's HTTP client; the answer is parsed
through :func:`falcoctl_py.bounded.loads_json` (the runtime is trusted, its size is not).
"""

from __future__ import annotations

import http.client
import re
import socket
from datetime import datetime
from typing import Any

from detector.events import ContainerInfo
from falcoctl_py.bounded import Limits, loads_json
from falcoctl_py.errors import FalcoctlPyError

MAX_ANSWER = 4 * 1024 * 1024
_LIMITS = Limits(max_bytes=MAX_ANSWER)


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


def parse_time(text: str | None) -> int | None:
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


def set_image(info: ContainerInfo, image: str | None, image_id: str | None) -> None:
    """``container.image*`` from an image reference and an image id (``sha256:...`` or hex)."""
    repo, tag, digest = split_image(image) if image else (None, None, None)
    info.image_id = (image_id or "").removeprefix("sha256:")[:12] or None
    if digest is not None:
        info.image_digest = digest
    info.image_repository = repo
    info.image_tag = tag or ("latest" if repo and digest is None else None)
    info.image = image or None


def fill_from_inspect(info: ContainerInfo, data: dict[str, Any]) -> None:
    """Set ``info``'s metadata from a Docker-compatible ``/containers/<id>/json`` answer."""
    config = data.get("Config") or {}
    host_config = data.get("HostConfig") or {}
    image = config.get("Image") or data.get("ImageName") or ""
    info.labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    info.mounts = [
        (str(m.get("Source", "")), str(m.get("Destination", "")))
        for m in data.get("Mounts") or []
        if isinstance(m, dict)
    ]
    info.privileged = bool(host_config.get("Privileged", False))
    info.start_ts = parse_time((data.get("State") or {}).get("StartedAt")) or parse_time(
        data.get("Created")
    )
    set_image(info, str(image), str(data.get("Image") or ""))
    # The name goes last: a reader that sees a name sees the rest too.
    info.name = str(data.get("Name") or "").lstrip("/") or None


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
        body = resp.read(MAX_ANSWER + 1)
    except http.client.HTTPException as exc:
        raise OSError(f"bad answer from {sock_path}: {exc}") from exc
    finally:
        conn.close()
    if resp.status == 404:
        raise LookupError(f"{full_id[:12]} unknown to {sock_path}")
    if resp.status != 200:
        raise OSError(f"{sock_path} answered HTTP {resp.status}")
    try:
        data = loads_json(body, where=sock_path, limits=_LIMITS)
    except FalcoctlPyError as exc:
        raise OSError(str(exc)) from exc
    if not isinstance(data, dict):
        raise OSError(f"{sock_path} answered a non-object")
    return data


def fetch(sock_path: str, info: ContainerInfo, *, timeout: float = 2.0) -> None:
    """Fill ``info`` from the Docker-compatible API at ``sock_path``; OSError/LookupError."""
    fill_from_inspect(info, inspect_container(sock_path, info.full_id, timeout=timeout))
