"""Follow test helpers: a real HTTP server standing in for the detector's ``/versions``, pushes."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from falcoctl_py.artifact.install import InstallDirs
from falcoctl_py.follow.follower import Follower
from falcoctl_py.follow.schedule import Schedule, StartupBehavior
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import Platform
from falcoctl_py.push import push_artifact
from tests.falcoctl_py.artifact_helpers import Entries, member, tar_gz
from tests.realparts import Registry

PLATFORM = Platform("linux", "amd64")
DETECTOR = {
    "engine_version": "63",
    "engine_version_semver": "0.63.0",
    "falco_version": "0.44.0",
    "plugin_api_version": "3.12.0",
    "plugin_versions": {"container": "0.7.1"},
}


class VersionsServer:
    """A real HTTP server answering ``GET /versions`` with :attr:`versions` (JSON)."""

    def __init__(self, versions: dict[str, Any] | None = None, port: int = 0) -> None:
        self.versions = dict(versions or DETECTOR)
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps(owner.versions).encode()
                self.send_response(200 if self.path == "/versions" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/versions"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FollowEnv:
    """A registry, an index lookup, destination dirs and a state dir for one test."""

    def __init__(self, registry: Registry, tmp: Path, host: str | None = None) -> None:
        self.registry, self.tmp = registry, tmp
        self.host = host or registry.host
        self.client = RegistryClient(plain_http=True, backoff=0.01, max_retries=1)
        self.pusher = RegistryClient(plain_http=True, backoff=0.01, max_retries=1)
        self.dirs = InstallDirs(tmp / "rules", tmp / "plugins", tmp / "assets")
        self.state_dir = tmp / "state"
        self.entries = Entries()
        self.updates: list[tuple[str, list[str], Any]] = []
        self._n = 0

    def entry(self, name: str, kind: str = "rulesfile") -> None:
        self.entries[name] = SimpleNamespace(
            name=name, registry=self.host, repository=f"{kind}s/{name}"
        )

    def push(
        self,
        name: str,
        version: str,
        files: dict[str, bytes],
        *,
        kind: str = "rulesfile",
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> str:
        """Push ``files`` (one file, or a tar.gz of several) as ``name:version`` (+ floating)."""
        self.entry(name, kind)
        self._n += 1
        src = self.tmp / "src" / str(self._n)
        src.mkdir(parents=True)
        if len(files) == 1:
            ((fname, data),) = files.items()
            path = src / fname
            path.write_bytes(data)
        else:
            path = src / f"{name}.tar.gz"
            path.write_bytes(tar_gz([member(n, d) for n, d in sorted(files.items())]))
        if kind == "plugin":
            kwargs.setdefault("platforms", ["linux/amd64"])
        return push_artifact(
            client=self.pusher,
            ref=f"{self.registry.host}/{kind}s/{name}:{version}",
            files=[path],
            artifact_type=kind,
            version=version,
            tags=["latest"] if tags is None else tags,
            add_floating_tags=tags is None,
            **kwargs,
        ).digest

    def follower(self, *refs: str, every: str = "1s", **kwargs: Any) -> Follower:
        kwargs.setdefault("startup", StartupBehavior.immediate)
        kwargs.setdefault("on_update", lambda *a: self.updates.append(a))
        return Follower(
            refs=list(refs),
            client=self.client,
            dirs=self.dirs,
            state_dir=self.state_dir,
            platform=PLATFORM,
            schedule=Schedule.from_options(every=every, cron=None),
            lookup=self.entries,
            **kwargs,
        )

    def close(self) -> None:
        self.client.close()
        self.pusher.close()


RULE_V1 = b"- rule: shell in container\n  desc: v1\n  condition: evt.type=execve\n"
RULE_V2 = b"- rule: shell in container\n  desc: v2\n  condition: evt.type=execve\n"


def rules(env: FollowEnv, name: str = "app_rules.yaml") -> bytes:
    """The installed rules file ``name``."""
    return (env.dirs.rulesfiles / name).read_bytes()
