"""``registry push`` and ``registry pull``: Falco artifacts exactly as falcoctl writes them."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoctl_py.artifact.archive import create_tar_gz, is_tar_gz
from falcoctl_py.bounded import check_expansion, check_yaml
from falcoctl_py.errors import FalcoctlPyError, IntegrityError, LocatedError, UsageError
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import (
    ANNOTATION_CREATED,
    ANNOTATION_SOURCE,
    ANNOTATION_TITLE,
    DEFAULT_TAG,
    DEPENDENCY_NAME_RE,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ArtifactConfig,
    ArtifactType,
    Dependency,
    Descriptor,
    Platform,
    Requirement,
    build_index,
    build_manifest,
    is_strict_semver,
    parse_artifact_manifest,
    parse_json_object,
    select_platform,
)
from falcoctl_py.oci.reference import TAG_RE, Reference, parse_reference

log = logging.getLogger(__name__)

REQUIREMENT_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


@dataclass(slots=True)
class PushResult:
    """What was pushed: the reference, the root digest and every tag pointing at it."""

    ref: str
    digest: str
    media_type: str
    tags: list[str]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PullResult:
    """What was pulled: the layer file written, its type and digests."""

    ref: str
    digest: str
    manifest_digest: str
    type: str
    path: str


def _version(version: str) -> str:
    if not is_strict_semver(version):
        raise UsageError(
            f"version {version!r} is not a strict semantic version",
            hint="use MAJOR.MINOR.PATCH, for example 1.0.0 (1 or 1.0 are refused, as in falcoctl)",
        )
    return version


def parse_requirement(text: str) -> Requirement:
    """``name:version`` as given to ``--requires``."""
    name, sep, version = text.rpartition(":")
    if not sep or not REQUIREMENT_NAME_RE.match(name):
        raise UsageError(
            f"invalid requirement {text!r}", hint="use NAME:VERSION, e.g. plugin_api_version:3.0.0"
        )
    return Requirement(name, _version(version))


def parse_dependency(text: str) -> Dependency:
    """``name:version`` with ``|alt:version`` alternatives, as given to ``--depends-on``."""
    items = []
    for part in text.split("|"):
        name, sep, version = part.strip().rpartition(":")
        if not sep or not DEPENDENCY_NAME_RE.match(name):
            raise UsageError(
                f"invalid dependency {text!r}",
                hint="use NAME:VERSION[|ALT:VERSION...], names like k8saudit or json",
            )
        items.append(Dependency(name, _version(version)))
    first, *alts = items
    return Dependency(first.name, first.version, tuple(alts))


def rulesfile_metadata(path: Path) -> tuple[tuple[Dependency, ...], tuple[Requirement, ...]]:
    """Dependencies (``required_plugin_versions``) and the engine requirement of a rules file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LocatedError(
            "a rules file must be UTF-8 text",
            path=str(path),
            hint="check the file, or push it with --type asset",
        ) from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    check_yaml(text, where=str(path))
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)(text)  # strings kept as written
    try:
        node = loader.get_single_node()
        check_expansion(node, where=str(path))
        docs = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise LocatedError(
            f"not valid YAML: {getattr(err, 'problem', err)}",
            path=str(path),
            line=mark.line + 1 if mark else None,
        ) from None
    finally:
        loader.dispose()
    deps: list[Dependency] = []
    reqs: list[Requirement] = []
    for item in docs if isinstance(docs, list) else ():
        if not isinstance(item, dict):
            continue
        engine = item.get("required_engine_version")
        if isinstance(engine, str) and engine.strip():
            reqs.append(Requirement("engine_version_semver", _engine_version(engine, path)))
        plugins = item.get("required_plugin_versions")
        for plugin in plugins if isinstance(plugins, list) else ():
            if not isinstance(plugin, dict) or "name" not in plugin:
                continue
            alts = tuple(
                Dependency(str(a.get("name")), str(a.get("version", "")))
                for a in plugin.get("alternatives") or ()
                if isinstance(a, dict)
            )
            deps.append(Dependency(str(plugin["name"]), str(plugin.get("version", "")), alts))
    return tuple(deps), tuple(reqs)


def _engine_version(text: str, path: Path) -> str:
    """``required_engine_version`` as semver: an old integer ``N`` is ``0.N.0``; anything that
    is not a semantic version is refused, as falcoctl does."""
    value = text.strip()
    if value.isdigit() and len(value) < 10:
        return f"0.{int(value)}.0"
    if is_strict_semver(value):
        return value
    raise LocatedError(
        f"required_engine_version {value[:40]!r} is not a semantic version",
        path=str(path),
        hint="use MAJOR.MINOR.PATCH such as 0.57.0 (or an old-style integer such as 15)",
    )


def _check_files(files: Sequence[Path]) -> None:
    """Every file to push exists and is a readable regular file (one clear line otherwise)."""
    for path in files:
        try:
            info = path.stat()
        except OSError as err:
            raise UsageError(f"cannot read {path}: {err.strerror}",
                             hint="check the path of the file to push") from None
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path} is not a regular file", hint="push a file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot read {path}: permission denied")


def _tags(ref: Reference, extra: Sequence[str], version: str, floating: bool) -> list[str]:
    primary = ref.tag or (extra[0] if extra else DEFAULT_TAG)
    tags = [primary, *extra]
    if floating:
        major, minor, _ = version.split("-")[0].split("+")[0].split(".")
        tags.append(version)
        if "-" not in version:
            tags += [major, f"{major}.{minor}"]
    out: list[str] = []
    for tag in tags:
        if not TAG_RE.match(tag):
            raise UsageError(f"invalid tag {tag!r}")
        if tag not in out:
            out.append(tag)
    return out


def _layer(path: Path) -> tuple[bytes, str]:
    """The tar.gz bytes of a file (archived under its base name unless it is one) and a title."""
    try:
        if is_tar_gz(path):
            return path.read_bytes(), path.name
        return create_tar_gz([(path.name, path.read_bytes())]), f"{path.name}.tar.gz"
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None


def _kind_and_platforms(
    artifact_type: str, files: Sequence[Path], platforms: Sequence[str]
) -> tuple[ArtifactType, list[Platform]]:
    """The artifact type and platforms, checked against the files (one per platform)."""
    try:
        kind = ArtifactType(artifact_type)
    except ValueError:
        raise UsageError(
            f"unknown artifact type {artifact_type!r}", hint="use rulesfile, plugin or asset"
        ) from None
    plats = [Platform.parse(p) for p in platforms]
    if not files:
        raise UsageError("nothing to push", hint="give at least one file")
    _check_files(files)
    if kind is ArtifactType.plugin:
        if len(plats) != len(files):
            raise UsageError(
                f"a plugin needs one --platform per file "
                f"({len(files)} files, {len(plats)} platforms)",
                hint="e.g. --platform linux/amd64 lib.so --platform linux/arm64 lib-arm64.so",
            )
        if len(set(plats)) != len(plats):
            raise UsageError("the same --platform is given twice")
    elif len(files) != 1:
        raise UsageError(f"a {kind} artifact holds exactly one file, got {len(files)}")
    return kind, plats


def _push_root(
    client: RegistryClient, repo: str, kind: ArtifactType, config: ArtifactConfig,
    files: Sequence[Path], plats: list[Platform], annotation_source: str | None,
) -> tuple[bytes, str]:
    """Push the config and layers and (for a plugin) the per-platform manifests; the root
    manifest or image index to tag, and its media type."""
    config_bytes = config.to_bytes()
    config_desc = Descriptor(
        kind.config_media_type, client.push_blob(repo, config_bytes), len(config_bytes)
    )
    annotations = {ANNOTATION_CREATED: _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if annotation_source:
        annotations[ANNOTATION_SOURCE] = annotation_source
    manifests: list[tuple[bytes, Platform | None]] = []
    for index, path in enumerate(files):
        data, title = _layer(path)
        layer = Descriptor(
            kind.layer_media_type,
            client.push_blob(repo, data),
            len(data),
            annotations={ANNOTATION_TITLE: title},
        )
        manifests.append(
            (build_manifest(config_desc, layer, annotations), plats[index] if plats else None)
        )
    if kind is not ArtifactType.plugin:
        return manifests[0][0], OCI_MANIFEST
    descs = []
    for body, plat in manifests:
        digest = client.push_manifest(repo, f"sha256:{_sha(body)}", body, OCI_MANIFEST)
        descs.append(Descriptor(OCI_MANIFEST, digest, len(body), dict(annotations), plat))
    root = build_index(descs, {ANNOTATION_SOURCE: annotation_source} if annotation_source else {})
    return root, OCI_INDEX


def push_artifact(
    *,
    client: RegistryClient,
    ref: str,
    files: Sequence[Path],
    artifact_type: str,
    version: str,
    tags: Sequence[str] = (),
    add_floating_tags: bool = False,
    requires: Sequence[str] = (),
    depends_on: Sequence[str] = (),
    annotation_source: str | None = None,
    name: str | None = None,
    platforms: Sequence[str] = (),
) -> PushResult:
    """Push files as a Falco artifact (an image index per platform for plugins); every input
    is checked before the registry is contacted."""
    target = parse_reference(ref)
    if target.digest or target.range:
        raise UsageError(f"push needs a tag, not a digest or range: {ref!r}")
    version = _version(version)
    kind, plats = _kind_and_platforms(artifact_type, files, platforms)
    deps = tuple(parse_dependency(d) for d in depends_on)
    reqs = tuple(parse_requirement(r) for r in requires)
    if kind is ArtifactType.rulesfile and not is_tar_gz(files[0]) and not (deps and reqs):
        auto_deps, auto_reqs = rulesfile_metadata(files[0])
        deps = deps or auto_deps
        reqs = reqs or auto_reqs
    all_tags = _tags(target, tags, version, add_floating_tags)
    config = ArtifactConfig(
        name=name or target.repository.rsplit("/", 1)[-1],
        version=version,
        dependencies=deps,
        requirements=reqs,
    )
    repo = target.name
    client.ping(target.registry)
    root, media_type = _push_root(client, repo, kind, config, files, plats, annotation_source)
    digest = ""
    for tag in all_tags:
        digest = client.push_manifest(repo, tag, root, media_type)
        log.info("pushed %s:%s (%s)", repo, tag, digest)
    return PushResult(
        ref=str(target.with_tag(all_tags[0])),
        digest=digest,
        media_type=media_type,
        tags=all_tags,
        config=config.as_json(),
    )


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def pull_artifact(
    *,
    client: RegistryClient,
    ref: str,
    dest_dir: Path,
    platform: Platform,
) -> PullResult:
    """Write an artifact's layer (the tar.gz, not extracted) into ``dest_dir``."""
    from falcoctl_py.artifact.resolve import ArtifactRef, pin

    target = pin(ArtifactRef(ref, parse_reference(ref)), client.list_tags)
    repo = target.name
    root = client.get_manifest(repo, target.target)
    data, manifest_digest = root.data, root.digest
    media_type = root.media_type or str(parse_json_object(data, where=repo).get("mediaType"))
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        desc = select_platform(data, platform, where=str(target))
        sub = client.get_manifest(repo, desc.digest)
        data, manifest_digest = sub.data, sub.digest
    manifest = parse_artifact_manifest(data, where=str(target))
    title = manifest.filename or f"{target.repository.rsplit('/', 1)[-1]}.tar.gz"
    if "/" in title or title in (".", "..") or "\x00" in title:
        raise IntegrityError(f"{target}: unsafe file name {title!r} in the layer's title")
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{title}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            client.get_blob(
                repo, manifest.layer.digest, out, max_size=2**31, size=manifest.layer.size
            )
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest_dir / title)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise FalcoctlPyError(f"cannot write {dest_dir / title}: {err.strerror}") from None
        raise
    return PullResult(
        ref=str(target),
        digest=root.digest,
        manifest_digest=manifest_digest,
        type=manifest.artifact_type.value,
        path=str(dest_dir / title),
    )
