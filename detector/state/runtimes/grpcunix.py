"""A gRPC channel to a runtime's unix socket, and one unary call on it with a deadline.

Generated message classes come from ``detector/state/runtimes/proto/*_pb2.py`` (committed,
generated from the ``.proto`` files beside them by grpcio-tools; a test regenerates them and
compares). Methods are called by their full gRPC path, so no generated service stubs are needed.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from falcoctl_py.bounded import Limits, loads_json
from falcoctl_py.errors import FalcoctlPyError

MAX_MESSAGE = 16 * 1024 * 1024
_JSON_LIMITS = Limits(max_bytes=4 * 1024 * 1024)


def json_object(raw: str | bytes | None, *, where: str) -> dict[str, Any]:
    """A JSON object a runtime embeds in its answer (bounded); ``{}`` when absent or not one."""
    if not raw:
        return {}
    try:
        data = loads_json(raw, where=where, limits=_JSON_LIMITS)
    except (ValueError, FalcoctlPyError):
        return {}
    return data if isinstance(data, dict) else {}


class GrpcUnix:
    """One lazily opened channel per socket path, shared by the calls made through it."""

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()
        self._methods: dict[str, Any] = {}

    def call(self, method: str, request: Any, response_type: Any,
             metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        """``method`` (``/package.Service/Name``) with ``request``; raises grpc.RpcError."""
        fn = self._methods.get(method)
        if fn is None:
            with self._lock:
                if self._channel is None:
                    self._channel = grpc.insecure_channel(
                        f"unix://{self.path}",
                        options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                 ("grpc.enable_http_proxy", 0)],
                    )
                fn = self._channel.unary_unary(
                    method, request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=response_type.FromString,
                )
                self._methods[method] = fn
        return fn(request, timeout=self.timeout, metadata=metadata or None)

    def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        with self._lock:
            channel, self._channel = self._channel, None
            self._methods.clear()
        if channel is not None:
            channel.close()


def not_found(err: grpc.RpcError) -> bool:
    """The runtime answered that it does not know the object."""
    code = err.code() if hasattr(err, "code") else None
    return bool(code == grpc.StatusCode.NOT_FOUND)
