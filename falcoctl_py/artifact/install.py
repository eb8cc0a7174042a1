"""Install artifacts: resolve, check, verify, stage, switch in, record.

The steps, in order, for every reference and dependency:

1. pin the reference (a range becomes a tag) and compare the registry's digest with the state
   recorded in ``--state-dir`` (one HEAD request): an unchanged artifact whose files are intact
   is skipped with no blob download;
2. fetch the manifest (following an image index to the platform), check the media types, the
   allowed types and the config, and resolve dependencies;
3. call the ``verify`` hook (signatures, :func:`verify_nodes`) for each artifact to write,
   before anything is written;
4. download each layer into a new generation folder of the destination, verifying its digest,
   and extract it there safely (:mod:`.archive`);
5. commit and record through the one artifact transaction (:mod:`.transaction`), which install,
   follow and rollback share: a reader of the destination sees the old files or the new ones.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from falcoctl_py.artifact.archive import DEFAULT_MAX_EXTRACTED, extract_tar_gz, file_sha256
from falcoctl_py.artifact.lock import state_lock
from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    IndexListing,
    IndexLookup,
    Node,
    parse_artifact_ref,
    pin,
)
from falcoctl_py.artifact.resolve import resolve_dependencies as _resolve
from falcoctl_py.artifact.state import ArtifactState, InstalledFile, list_states, load_state
from falcoctl_py.artifact.transaction import Staged, Transaction, open_stage
from falcoctl_py.errors import FalcoctlPyError, InstallError, UsageError
from falcoctl_py.oci.client import RegistryClient, RequestStats
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

if TYPE_CHECKING:
    from falcoctl_py.artifact.falco_yaml import FalcoConfigUpdate

log = logging.getLogger(__name__)

DEFAULT_MAX_LAYER = 512 * 1024 * 1024
WORKERS = 4  # concurrent manifest/blob fetches
T = TypeVar("T")

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
class InstalledArtifact:
    """The outcome for one artifact."""

    ref: str
    name: str
    version: str
    type: str
    digest: str
    status: str  # installed | updated | up-to-date | satisfied (kept) | provided (by the runtime)
    files: list[str] = field(default_factory=list)
    requested_by: list[str] = field(default_factory=list)


@dataclass(slots=True)
class InstallResult:
    """Every artifact handled, in install order, and the requests it took."""

    artifacts: list[InstalledArtifact]
    requests: int = 0
    manifest_requests: int = 0
    blob_downloads: int = 0
    blob_bytes: int = 0
    falco_config_update: FalcoConfigUpdate | None = None  # with ``--update-config``


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
        config_bytes = self.client.get_blob_bytes(repo, manifest.config.digest)
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
            raise _disk_error(err, dest) from None
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
            raise _disk_error(err, dest) from None
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


def _disk_error(err: OSError, dest: Path) -> FalcoctlPyError:
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


def install_artifacts(
    *,
    refs: Sequence[str],
    client: RegistryClient,
    lookup: IndexLookup | None,
    dirs: InstallDirs,
    state_dir: Path,
    platform: Platform,
    allowed_types: Sequence[str] = (),
    resolve_deps: bool = True,
    verify: VerifyHook | None = None,
    check: CheckHook | None = None,
    progress: Progress | None = None,
    max_layer_size: int = DEFAULT_MAX_LAYER,
    max_extracted: int = DEFAULT_MAX_EXTRACTED,
    provided: Mapping[str, str] | None = None,
) -> InstallResult:
    """Install ``refs`` (and their dependencies) atomically; see the module docstring.

    ``provided`` names plugins the target runtime has built in (name -> version): dependencies
    they satisfy are not installed (the bundled detector provides ``container``).
    """
    if not refs:
        raise UsageError(
            "no artifact to install",
            hint="give references, or set artifact.install.refs in the config",
        )
    # one install, follow update or rollback at a time per state directory
    with state_lock(state_dir):
        before = _snapshot(client.stats)
        inst = Installer(
            client=client,
            lookup=lookup,
            dirs=dirs,
            state_dir=state_dir,
            platform=platform,
            allowed_types=allowed_types,
            max_layer_size=max_layer_size,
            max_extracted=max_extracted,
            progress=progress,
        )
        tx = Transaction(state_dir)
        tx.recover({dirs.rulesfiles, dirs.plugins, dirs.assets})
        arefs = [parse_artifact_ref(text, lookup) for text in refs]
        roots = [
            inst.node(cand, from_user=True)
            for cand in _parallel([functools.partial(inst.inspect, a, a.key) for a in arefs])
        ]
        for root in roots:
            root.requested_by.append("command line")
        kept: list[tuple[str, str]] = []
        installed = inst.installed() if resolve_deps else {}
        if resolve_deps:
            nodes = _resolve(
                roots,
                fetch=inst.fetch,
                lookup=lookup,
                list_tags=client.list_tags,
                installed={**{n: st.version for n, st in installed.items()}, **(provided or {})},
                kept=kept,
            )
        else:
            bare = [Node(n.name, n.version, (), n.payload, n.requested_by, True) for n in roots]
            nodes = _resolve(bare, fetch=inst.fetch, lookup=None, list_tags=client.list_tags)
        todo = [n for n in nodes if not n.payload.up_to_date]
        if check is not None:
            for node in todo:
                check(node.name, node.version, node.payload.config, node.payload.artifact_type)
        if verify is not None:
            verify_nodes(todo, verify, lookup)
        staged = dict(
            zip(
                [n.payload.key for n in todo],
                _parallel(
                    [functools.partial(inst.stage, n.payload) for n in todo],
                    cleanup=lambda done: done.discard(),
                ),
                strict=True,
            )
        )
        requirers: dict[str, list[str]] = {}
        for name, requirer in kept:
            requirers.setdefault(name, []).append(requirer)
        results = [
            _kept_report(name, sorted(set(who)), installed.get(name), provided or {})
            for name, who in sorted(requirers.items())
        ]
        for node in nodes:
            cand = node.payload
            if cand.up_to_date:
                assert cand.state is not None
                results.append(_report(node, "up-to-date", [f.path for f in cand.state.files]))
                continue
            work = staged.pop(cand.key)
            try:
                paths = tx.commit(work, cand.to_state(node, platform, work), old=cand.state)
            except OSError as err:
                work.discard()
                raise _disk_error(err, inst.dirs.for_type(cand.artifact_type)) from None
            status = "updated" if cand.state is not None else "installed"
            log.info(
                "%s %s:%s into %s",
                status,
                node.name,
                node.version,
                inst.dirs.for_type(cand.artifact_type),
            )
            results.append(_report(node, status, paths))
        after = _snapshot(client.stats)
        return InstallResult(
            artifacts=results,
            requests=after.requests - before.requests,
            manifest_requests=after.manifest_requests - before.manifest_requests,
            blob_downloads=after.blob_gets - before.blob_gets,
            blob_bytes=after.blob_bytes - before.blob_bytes,
        )


def _parallel(
    jobs: Sequence[Callable[[], T]], *, cleanup: Callable[[T], None] | None = None
) -> list[T]:
    """Run jobs on a few threads, results in order; on any failure clean up what succeeded and
    raise the first failure (in job order)."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
        errors = [f.exception() for f in futures]
    failed = next((e for e in errors if e is not None), None)
    if failed is None:
        return [f.result() for f in futures]
    if cleanup is not None:
        for future, error in zip(futures, errors, strict=True):
            if error is None:
                cleanup(future.result())
    raise failed


def _snapshot(stats: RequestStats) -> RequestStats:
    return RequestStats(**{name: getattr(stats, name) for name in RequestStats.__slots__})  # type: ignore[attr-defined]


def _kept_report(
    name: str, who: list[str], state: ArtifactState | None, provided: Mapping[str, str]
) -> InstalledArtifact:
    """A dependency not installed: satisfied by what is on disk, or provided by the runtime."""
    if state is None or name in provided:
        return InstalledArtifact(
            ref="", name=name, version=provided[name], type="plugin", digest="",
            status="provided", requested_by=who,
        )  # fmt: skip
    return InstalledArtifact(
        ref=state.ref,
        name=name,
        version=state.version,
        type=state.type,
        digest=state.digest,
        status="satisfied",
        files=[f.path for f in state.files],
        requested_by=who,
    )


def _report(node: Node[Candidate], status: str, files: list[str]) -> InstalledArtifact:
    cand = node.payload
    return InstalledArtifact(
        ref=str(cand.pinned),
        name=node.name,
        version=node.version,
        type=cand.artifact_type.value,
        digest=cand.root_digest,
        status=status,
        files=files,
        requested_by=list(node.requested_by),
    )
