"""The plan of an install, shared by install and follow: pin, inspect, stage, verify.

:class:`Installer` pins a reference and compares it with the recorded state (one ``HEAD`` when
nothing changed), fetches the manifest and config of what changed (:class:`Candidate`), and
stages a candidate's layer into a new generation (:mod:`.transaction`); :func:`verify_nodes`
checks signatures by where the bytes come from. :mod:`.install` and :mod:`falcoctl_py.follow`
drive these steps and commit through the one transaction.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from falcoctl_py.artifact.archive import extract_tar_gz, file_sha256
from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    IndexListing,
    IndexLookup,
    Node,
    pin,
)
from falcoctl_py.artifact.state import ArtifactState, InstalledFile, list_states, load_state
from falcoctl_py.artifact.transaction import Staged, open_stage
from falcoctl_py.errors import FalcoctlPyError, InstallError, UsageError
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    ArtifactConfig,
    ArtifactManifest,
    ArtifactType,
    Dependency,
    Platform,
    parse_artifact_manifest,
    parse_json_object,
    select_platform,
)
from falcoctl_py.oci.reference import Reference

log = logging.getLogger(__name__)

DEFAULT_MAX_LAYER = 512 * 1024 * 1024

VerifyHook = Callable[[str, str, str, Any], None]
"""``verify(registry_host, repository, root_digest, index_entry_or_None)``: raise to refuse."""

CheckHook = Callable[[str, str, ArtifactConfig, ArtifactType], None]
"""``check(name, version, config, type)`` before anything is written (requirements): raise to
refuse."""


class Progress(Protocol):
    """Receives download progress; the CLI draws bars or logs lines."""

    def start(self, key: str, label: str, total: int) -> None: ...
    def advance(self, key: str, amount: int) -> None: ...
    def finish(self, key: str, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class InstallDirs:
    """Where each artifact type goes."""

    rulesfiles: Path
    plugins: Path
    assets: Path

    def for_type(self, kind: ArtifactType) -> Path:
        return {
            ArtifactType.rulesfile: self.rulesfiles,
            ArtifactType.plugin: self.plugins,
            ArtifactType.asset: self.assets,
        }[kind]


@dataclass(slots=True)
class Candidate:
    """A pinned artifact with its config; ``manifest`` is None when the installed one is current."""

    aref: ArtifactRef
    pinned: Reference
    key: str
    root_digest: str
    artifact_type: ArtifactType
    config: ArtifactConfig
    manifest: ArtifactManifest | None = None
    manifest_digest: str = ""
    state: ArtifactState | None = None

    @property
    def up_to_date(self) -> bool:
        return self.manifest is None

    def to_state(self, node: Node[Candidate], platform: Platform, staged: Staged) -> ArtifactState:
        """The state to record once ``staged`` (this candidate's files) is in place."""
        plugin = self.artifact_type is ArtifactType.plugin
        return ArtifactState(
            ref=self.key,
            digest=self.root_digest,
            name=node.name,
            version=node.version,
            type=self.artifact_type.value,
            platform=str(platform) if plugin else "",
            manifest_digest=self.manifest_digest,
            layer_digest=self.manifest.layer.digest if self.manifest else "",
            files=[
                InstalledFile(p, f.sha256)
                for p, f in zip(staged.paths(), staged.files, strict=True)
            ],
            config=self.config.as_json(),
        )


def is_intact(state: ArtifactState, dirs: InstallDirs, platform: Platform) -> bool:
    """The recorded files are all there, unchanged, in today's destination."""
    try:
        kind = ArtifactType(state.type)
    except ValueError:
        return False
    if kind is ArtifactType.plugin and state.platform and state.platform != str(platform):
        return False
    dest = dirs.for_type(kind).resolve()
    if not state.files:
        return False
    for item in state.files:
        path = Path(item.path)
        if path.parent.resolve() != dest and dest not in path.parent.resolve().parents:
            return False
        if file_sha256(path) != item.sha256:
            return False
    return True


class Installer:
    """The steps of an install (inspect, stage, commit), shared with follow."""

    def __init__(
        self,
        *,
        client: RegistryClient,
        lookup: IndexLookup | None,
        dirs: InstallDirs,
        state_dir: Path,
        platform: Platform,
        allowed_types: Sequence[str],
        max_layer_size: int,
        max_extracted: int,
        progress: Progress | None,
    ) -> None:
        self.client = client
        self.lookup = lookup
        self.dirs = dirs
        self.state_dir = state_dir
        self.platform = platform
        self.allowed = {str(t) for t in allowed_types}
        self.max_layer_size = max_layer_size
        self.max_extracted = max_extracted
        self.progress = progress

    def check_allowed(self, kind: ArtifactType, ref: Reference) -> None:
        if self.allowed and kind.value not in self.allowed:
            raise UsageError(
                f"cannot install {ref}: type {kind} is not allowed "
                f"(allowed: {', '.join(sorted(self.allowed))})",
                hint="change --allowed-types or artifact.allowedTypes",
            )

    def inspect(self, aref: ArtifactRef, key: str) -> Candidate:
        """Pin, compare with the state, and fetch manifest + config when something changed."""
        pinned = pin(aref, self.client.list_tags)
        repo = pinned.name
        state = load_state(self.state_dir, key)
        fresh = state is not None and is_intact(state, self.dirs, self.platform)
        target = pinned.target
        if fresh and state is not None:
            digest = pinned.digest or self.client.head_manifest(repo, pinned.target).digest
            if digest == state.digest:
                kind = ArtifactType(state.type)
                self.check_allowed(kind, pinned)
                config = ArtifactConfig.from_json(state.config, where=f"state of {key}")
                log.debug("%s is up to date (%s)", key, digest)
                return Candidate(aref, pinned, key, digest, kind, config, state=state)
            target = digest  # fetch exactly what HEAD saw
        got = self.client.get_manifest(repo, target)
        root_digest, data, manifest_digest = got.digest, got.data, got.digest
        media_type = got.media_type or str(parse_json_object(data, where=repo).get("mediaType"))
        if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            desc = select_platform(data, self.platform, where=f"{pinned}")
            sub = self.client.get_manifest(repo, desc.digest)
            data, manifest_digest = sub.data, sub.digest
        manifest = parse_artifact_manifest(data, where=f"{pinned}")
        self.check_allowed(manifest.artifact_type, pinned)
        config_bytes = self.client.get_blob_bytes(
            repo, manifest.config.digest, size=manifest.config.size
        )
        config = ArtifactConfig.from_bytes(config_bytes, where=f"config of {pinned}")
        return Candidate(
            aref,
            pinned,
            key,
            root_digest,
            manifest.artifact_type,
            config,
            manifest=manifest,
            manifest_digest=manifest_digest,
            state=state,
        )

    def node(self, cand: Candidate, *, from_user: bool) -> Node[Candidate]:
        name = cand.config.name or cand.pinned.repository.rsplit("/", 1)[-1]
        version = cand.config.version or (cand.pinned.tag or "0.0.0")
        return Node(name, version, cand.config.dependencies, cand, from_user=from_user)

    def fetch(self, aref: ArtifactRef) -> tuple[str, str, tuple[Dependency, ...], Candidate]:
        cand = self.inspect(aref, str(aref.ref))
        node = self.node(cand, from_user=False)
        return node.name, node.version, node.dependencies, cand

    def installed(self) -> dict[str, ArtifactState]:
        out: dict[str, ArtifactState] = {}
        for state in list_states(self.state_dir):
            if state.name and state.version and is_intact(state, self.dirs, self.platform):
                out[state.name] = state
        return out

    def stage(self, cand: Candidate) -> Staged:
        """Download and extract into a new generation folder of the destination."""
        assert cand.manifest is not None
        dest = self.dirs.for_type(cand.artifact_type)
        try:
            staged = open_stage(dest, cand.key)
        except OSError as err:
            raise disk_error(err, dest) from None
        layer = cand.manifest.layer
        label = f"{cand.config.name or cand.pinned.repository}:{cand.config.version}"
        key = cand.key
        progress = self.progress
        advance = None
        if progress is not None:
            advance = lambda n: progress.advance(key, n)  # noqa: E731
        try:
            if progress is not None:
                progress.start(key, label, layer.size)
            with open(staged.layer, "wb") as out:
                self.client.get_blob(
                    cand.pinned.name,
                    layer.digest,
                    out,
                    max_size=self.max_layer_size,
                    size=layer.size,
                    progress=advance,
                )
            staged.files = extract_tar_gz(
                staged.layer, staged.generation, max_total=self.max_extracted
            )
            staged.layer.unlink()
            if not staged.files:
                raise InstallError(f"{cand.pinned}: the artifact's archive holds no files")
            if progress is not None:
                progress.finish(key, f"{label} downloaded")
        except OSError as err:
            staged.discard()
            raise disk_error(err, dest) from None
        except BaseException:
            staged.discard()
            raise
        return staged


def verify_nodes(
    nodes: Sequence[Node[Candidate]], verify: VerifyHook, lookup: IndexLookup | None
) -> None:
    """Check the signature of every node to write, by where its bytes come from.

    The policy follows the registry host and repository actually pulled and the index entry
    that resolved the reference; a full reference gets the entry of the same (normalised)
    repository, never one found by the name the publisher wrote in the artifact's config.
    """
    from falcoctl_py.signing.policy import entry_for_repository

    listed = lookup.entries() if isinstance(lookup, IndexListing) else ()
    for node in nodes:
        cand = node.payload
        if cand.up_to_date:
            continue
        entry = cand.aref.entry
        if entry is None:
            entry = entry_for_repository(listed, cand.pinned.registry, cand.pinned.repository)
        verify(cand.pinned.registry, cand.pinned.repository, cand.root_digest, entry)


def disk_error(err: OSError, dest: Path) -> FalcoctlPyError:
    if err.errno == errno.ENOSPC:
        return InstallError(
            f"no space left on the device of {dest}; nothing was changed there",
            hint="free some space and retry",
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InstallError(
            f"cannot write into {dest}: {err.strerror}",
            hint="run as a user who may write there, or pick another directory",
        )
    return InstallError(f"cannot stage files in {dest}: {err.strerror or err}")
