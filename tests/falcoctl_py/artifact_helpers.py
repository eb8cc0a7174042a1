"""Artifact test helpers: index/config files, a test CA, crafted archives, a fault proxy."""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import io
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.realparts import Registry


def write_index(path: Path, registry: Registry, names: dict[str, tuple[str, str]]) -> Path:
    """An index.yaml listing ``name -> (type, repository)`` on ``registry``."""
    entries = [
        {
            "name": name,
            "type": kind,
            "registry": registry.host,
            "repository": repo,
            "description": f"{name} for tests",
            "keywords": [name],
        }
        for name, (kind, repo) in sorted(names.items())
    ]
    path.write_text(yaml.safe_dump(entries))
    return path


def write_config(tmp: Path, index: Path | None = None, **artifact: object) -> Path:
    """A falcoctl.yaml with one file index (or none) and a private credential store."""
    data: dict[str, object] = {
        "indexes": [{"name": "test", "url": f"file://{index}", "backend": "file"}] if index else [],
        "registry": {"creds": {"config": str(tmp / "docker-config.json")}},
        "artifact": dict(artifact),
    }
    path = tmp / "falcoctl.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def make_ca(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with cryptography: (cert, key, ca).

    Over 60 lines only by the certificate builders' field lists."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.falcoctl_py.signing.standins import key_usage

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "falcoctl-py test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    workdir.mkdir(parents=True, exist_ok=True)
    paths = (workdir / "server.pem", workdir / "server.key", workdir / "ca.pem")
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A gzip tar of hand-made members (for unsafe archives)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def member(
    name: str, data: bytes | None = b"x", *, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.linkname = linkname
    return info, (data if kind == tarfile.REGTYPE else None)


def blob_path(registry: Registry, digest: str) -> Path:
    """Where docker-registry keeps a blob on disk."""
    hexd = digest.split(":", 1)[1]
    return registry.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


@dataclass
class Fault:
    """What the proxy does to matching requests: a status (with Retry-After) or a cut body."""

    match: Callable[[str, str], bool]
    status: int = 0
    retry_after: str | None = None
    cut_after: int = -1  # send this many body bytes, then drop the connection
    times: int = 1_000_000


@dataclass
class FaultProxy:
    """A reverse proxy in front of a registry that injects faults (use its ``host``)."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    bearer: bool = False  # demand a Bearer token from the proxy's own /token endpoint
    token_requests: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Serve on a loopback port; over 60 lines by its nested request handler (one fault a
        branch)."""
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                method, path = self.command, self.path
                if path.startswith("http://"):  # used as a forward proxy (HTTP_PROXY)
                    path = "/" + path.split("/", 3)[3]
                proxy.seen.append(f"{method} {path}")
                fault = next(
                    (f for f in proxy.faults if f.times > 0 and f.match(method, path)), None
                )
                if fault is not None and fault.status:
                    fault.times -= 1
                    self.send_response(fault.status)
                    if fault.retry_after is not None:
                        self.send_header("Retry-After", fault.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if proxy.bearer and path.startswith("/token"):
                    proxy.token_requests += 1
                    self._reply(200, b'{"token": "good-token", "expires_in": 300}')
                    return
                if proxy.bearer and self.headers.get("Authorization") != "Bearer good-token":
                    realm = f"http://{proxy.host}/token"
                    self._reply(
                        401, b"", {"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'}
                    )
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value.replace(proxy.upstream, proxy.host))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if fault is not None and fault.cut_after >= 0 and method == "GET":
                    fault.times -= 1
                    self.wfile.write(data[: fault.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if method != "HEAD":
                    self.wfile.write(data)

            def _reply(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class Entries(dict[str, Any]):
    """Index entries by name: a lookup (``entries(name)``) that can also list them all."""

    def __call__(self, name: str) -> Any:
        return self.get(name)

    def entries(self) -> list[Any]:
        return list(self.values())


def visible(folder: Path) -> list[str]:
    """What a reader of ``folder`` finds: names that open (a link that does not resolve yet is
    absent to a reader, ENOENT), the installer's ``.falcoctl*`` area left out."""
    return sorted(
        p.name for p in folder.iterdir() if not p.name.startswith(".falcoctl") and p.exists()
    )
