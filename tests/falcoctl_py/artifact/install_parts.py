"""The install test environment: a real registry, a client, destinations and pushes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from falcoctl_py.artifact import install as install_mod
from falcoctl_py.artifact.install import InstallDirs, install_artifacts
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import Platform
from falcoctl_py.push import push_artifact
from tests.falcoctl_py.artifact_helpers import Entries
from tests.realparts import Registry

PLATFORM = Platform("linux", "amd64")


class Env:
    def __init__(self, registry: Registry, client: RegistryClient, tmp: Path) -> None:
        self.registry, self.client, self.tmp = registry, client, tmp
        self.dirs = InstallDirs(tmp / "rules", tmp / "plugins", tmp / "assets")
        self.entries = Entries()

    def push(
        self, name: str, version: str, files: list[Path], kind: str = "rulesfile", **kwargs: Any
    ) -> str:
        repo = f"{kind}s/{name}"
        self.entries[name] = SimpleNamespace(
            name=name, registry=self.registry.host, repository=repo
        )
        if kind == "plugin":
            kwargs.setdefault("platforms", ["linux/amd64"])
        return push_artifact(
            client=self.client,
            ref=self.registry.ref(repo, version),
            files=files,
            artifact_type=kind,
            version=version,
            add_floating_tags=True,
            **kwargs,
        ).digest

    def install(self, *refs: str, **kwargs: Any) -> install_mod.InstallResult:
        kwargs.setdefault("platform", PLATFORM)
        return install_artifacts(
            refs=list(refs),
            client=self.client,
            lookup=self.entries,
            dirs=self.dirs,
            state_dir=self.tmp / "state",
            **kwargs,
        )

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def dest_files(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.tmp))
            for d in (self.dirs.rulesfiles, self.dirs.plugins, self.dirs.assets)
            if d.exists()
            for p in d.rglob("*")
            if not any(part.startswith(".falcoctl") for part in p.relative_to(d).parts)
        )
