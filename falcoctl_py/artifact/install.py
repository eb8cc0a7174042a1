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

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from falcoctl_py.artifact.archive import DEFAULT_MAX_EXTRACTED
from falcoctl_py.artifact.lock import state_lock
from falcoctl_py.artifact.plan import (
    DEFAULT_MAX_LAYER,
    Candidate,
    CheckHook,
    InstallDirs,
    Installer,
    Progress,
    VerifyHook,
    disk_error,
    is_intact,
    verify_nodes,
)
from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    IndexLookup,
    Node,
    parse_artifact_ref,
)
from falcoctl_py.artifact.resolve import resolve_dependencies as _resolve
from falcoctl_py.artifact.state import ArtifactState
from falcoctl_py.artifact.transaction import Staged, Transaction
from falcoctl_py.errors import UsageError
from falcoctl_py.oci.client import RegistryClient, RequestStats
from falcoctl_py.oci.media import (
    Platform,
)

if TYPE_CHECKING:
    from falcoctl_py.artifact.falco_yaml import FalcoConfigUpdate

__all__ = [
    "DEFAULT_MAX_LAYER",
    "Candidate",
    "CheckHook",
    "InstallDirs",
    "InstallResult",
    "InstalledArtifact",
    "Installer",
    "Progress",
    "VerifyHook",
    "install_artifacts",
    "is_intact",
    "verify_nodes",
]

log = logging.getLogger(__name__)

WORKERS = 4  # concurrent manifest/blob fetches
T = TypeVar("T")


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
    they satisfy are not installed (the bundled detector provides ``container``). Over 60 lines
    only by its keyword parameters; the steps are the functions below.
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
        roots = _roots(inst, [parse_artifact_ref(text, lookup) for text in refs])
        kept: list[tuple[str, str]] = []
        installed = inst.installed() if resolve_deps else {}
        if resolve_deps:
            have = {**{n: st.version for n, st in installed.items()}, **(provided or {})}
            nodes = _resolve(roots, fetch=inst.fetch, lookup=lookup, list_tags=client.list_tags,
                             installed=have, kept=kept)
        else:
            bare = [Node(n.name, n.version, (), n.payload, n.requested_by, True) for n in roots]
            nodes = _resolve(bare, fetch=inst.fetch, lookup=None, list_tags=client.list_tags)
        todo = [n for n in nodes if not n.payload.up_to_date]
        if check is not None:
            for node in todo:
                check(node.name, node.version, node.payload.config, node.payload.artifact_type)
        if verify is not None:
            verify_nodes(todo, verify, lookup)
        staged = _stage(inst, todo)
        results = _kept_reports(kept, installed, provided or {})
        results += _commit(inst, tx, nodes, staged, platform)
        after = _snapshot(client.stats)
        return InstallResult(
            artifacts=results,
            requests=after.requests - before.requests,
            manifest_requests=after.manifest_requests - before.manifest_requests,
            blob_downloads=after.blob_gets - before.blob_gets,
            blob_bytes=after.blob_bytes - before.blob_bytes,
        )


def _roots(inst: Installer, arefs: Sequence[ArtifactRef]) -> list[Node[Candidate]]:
    """The artifacts the user named, inspected in parallel (manifests, configs, states)."""
    roots = [
        inst.node(cand, from_user=True)
        for cand in _parallel([functools.partial(inst.inspect, a, a.key) for a in arefs])
    ]
    for root in roots:
        root.requested_by.append("command line")
    return roots


def _stage(inst: Installer, todo: Sequence[Node[Candidate]]) -> dict[str, Staged]:
    """Download and extract every artifact to write, in parallel; by state key."""
    staged = _parallel(
        [functools.partial(inst.stage, n.payload) for n in todo],
        cleanup=lambda done: done.discard(),
    )
    return dict(zip([n.payload.key for n in todo], staged, strict=True))


def _commit(
    inst: Installer,
    tx: Transaction,
    nodes: Sequence[Node[Candidate]],
    staged: dict[str, Staged],
    platform: Platform,
) -> list[InstalledArtifact]:
    """Switch each staged artifact in, in install order; the up-to-date ones are reported."""
    results = []
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
            raise disk_error(err, inst.dirs.for_type(cand.artifact_type)) from None
        status = "updated" if cand.state is not None else "installed"
        log.info("%s %s:%s into %s", status, node.name, node.version,
                 inst.dirs.for_type(cand.artifact_type))
        results.append(_report(node, status, paths))
    return results


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
    return RequestStats(**{name: getattr(stats, name) for name in RequestStats.__slots__})


def _kept_reports(
    kept: Sequence[tuple[str, str]],
    installed: Mapping[str, ArtifactState],
    provided: Mapping[str, str],
) -> list[InstalledArtifact]:
    """The dependencies not installed, by name, each with who required it."""
    requirers: dict[str, list[str]] = {}
    for name, requirer in kept:
        requirers.setdefault(name, []).append(requirer)
    return [
        _kept_report(name, sorted(set(who)), installed.get(name), provided)
        for name, who in sorted(requirers.items())
    ]


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

