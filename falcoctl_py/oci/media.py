"""Falco's OCI artifact format: media types, annotations, the config JSON and manifests."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from falcoctl_py.bounded import InputLimitError, loads_json
from falcoctl_py.errors import IntegrityError, NotFoundError, UsageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))

ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
DEFAULT_TAG = "latest"

SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
DEPENDENCY_NAME_RE = re.compile(r"^[a-z]+[a-z0-9-_]*$")
PLATFORM_RE = re.compile(r"^[a-z]+/[a-z0-9_]+$")


class ArtifactType(enum.StrEnum):
    """The kinds of Falco artifacts."""

    rulesfile = "rulesfile"
    plugin = "plugin"
    asset = "asset"

    @property
    def config_media_type(self) -> str:
        return f"application/vnd.cncf.falco.{self.value}.config.v1+json"

    @property
    def layer_media_type(self) -> str:
        return f"application/vnd.cncf.falco.{self.value}.layer.v1+tar.gz"

    @classmethod
    def from_layer_media_type(cls, media_type: str) -> ArtifactType | None:
        for kind in cls:
            if kind.layer_media_type == media_type:
                return kind
        return None

    @classmethod
    def from_config_media_type(cls, media_type: str) -> ArtifactType | None:
        for kind in cls:
            if kind.config_media_type == media_type:
                return kind
        return None


def is_strict_semver(version: str) -> bool:
    """True for a full semantic version ``MAJOR.MINOR.PATCH[-pre][+build]``."""
    return SEMVER_RE.match(version) is not None


@dataclass(frozen=True, slots=True)
class Platform:
    """An ``os/arch`` pair."""

    os: str
    architecture: str

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"

    @classmethod
    def parse(cls, text: str) -> Platform:
        if not PLATFORM_RE.match(text):
            raise UsageError(
                f"invalid platform {text!r}", hint="use OS/ARCH, for example linux/amd64"
            )
        os_name, arch = text.split("/", 1)
        return cls(os_name, arch)


def current_platform() -> Platform:
    """This machine's platform in Go's naming (``linux/amd64``, ``linux/arm64``)."""
    import platform as _platform

    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )
    return Platform(_platform.system().lower(), arch)


@dataclass(frozen=True, slots=True)
class Dependency:
    """A dependency on another artifact (name and minimum version), with alternatives."""

    name: str
    version: str
    alternatives: tuple[Dependency, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.alternatives:
            out["alternatives"] = [
                {"name": a.name, "version": a.version} for a in self.alternatives
            ]
        return out


@dataclass(frozen=True, slots=True)
class Requirement:
    """A requirement on the running Falco (``engine_version_semver``, ``plugin_api_version``)."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class ArtifactConfig:
    """The config blob of a Falco artifact."""

    name: str = ""
    version: str = ""
    dependencies: tuple[Dependency, ...] = ()
    requirements: tuple[Requirement, ...] = ()

    def to_bytes(self) -> bytes:
        """Compact JSON as falcoctl writes it (empty fields omitted, lists sorted by name)."""
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.version:
            out["version"] = self.version
        if self.dependencies:
            deps = sorted(self.dependencies, key=lambda d: d.name)
            out["dependencies"] = [d.as_json() for d in deps]
        if self.requirements:
            reqs = sorted(self.requirements, key=lambda r: r.name)
            out["requirements"] = [{"name": r.name, "version": r.version} for r in reqs]
        return json.dumps(out, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.to_bytes())
        return value

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "config") -> ArtifactConfig:
        """Parse a config blob (bounded JSON); any problem is an IntegrityError naming ``where``."""
        return cls.from_json(parse_json_object(data, where=where), where=where)

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, where: str = "config") -> ArtifactConfig:
        """The config from parsed JSON, every field type checked."""
        if not isinstance(raw, dict):
            raise IntegrityError(f"{where}: config is not a JSON object")

        def dep(item: Any, depth: int = 0) -> Dependency:
            if not isinstance(item, dict) or depth > 1:
                raise IntegrityError(f"{where}: malformed dependency {_short(item)}")
            alts = tuple(dep(a, depth + 1) for a in _items(item, "alternatives", where))
            return Dependency(_field(item, "name", where), _field(item, "version", where), alts)

        reqs = []
        for item in _items(raw, "requirements", where):
            if not isinstance(item, dict):
                raise IntegrityError(f"{where}: malformed requirement {_short(item)}")
            reqs.append(Requirement(_field(item, "name", where), _field(item, "version", where)))
        return cls(
            name=_field(raw, "name", where),
            version=_field(raw, "version", where),
            dependencies=tuple(dep(d) for d in _items(raw, "dependencies", where)),
            requirements=tuple(reqs),
        )


def _short(value: Any) -> str:
    """A value shown in an error: its repr, cut to one short line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _items(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    """``raw[key]`` as a list (missing or null: empty), or an IntegrityError."""
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise IntegrityError(f"{where}: {key!r} must be a list, not {type(value).__name__}")
    return value


def _field(raw: dict[str, Any], key: str, where: str) -> str:
    """``raw[key]`` as a string (missing or null: ''), or an IntegrityError."""
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IntegrityError(f"{where}: {key!r} must be a string, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = {"architecture": self.platform.architecture, "os": self.platform.os}
        return out

    @classmethod
    def from_json(cls, raw: Any, *, where: str) -> Descriptor:
        """A descriptor from parsed JSON, every field type checked."""
        if not isinstance(raw, dict):
            raise IntegrityError(f"{where}: malformed descriptor")
        digest, size = raw.get("digest"), raw.get("size")
        if (not isinstance(digest, str) or isinstance(size, bool) or not isinstance(size, int)
                or not 0 <= size < 2**63):
            raise IntegrityError(f"{where}: descriptor without a valid digest and size")
        plat = raw.get("platform")
        platform = None
        if isinstance(plat, dict):
            platform = Platform(_field(plat, "os", where), _field(plat, "architecture", where))
        return cls(
            media_type=_field(raw, "mediaType", where),
            digest=digest,
            size=size,
            annotations=annotations_of(raw, where),
            platform=platform,
        )


def annotations_of(raw: dict[str, Any], where: str) -> dict[str, str]:
    """``raw["annotations"]``: a mapping of strings to strings, or an IntegrityError."""
    value = raw.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise IntegrityError(f"{where}: annotations must be a mapping of strings to strings")
    return dict(value)


def build_manifest(config: Descriptor, layer: Descriptor, annotations: dict[str, str]) -> bytes:
    """An OCI image manifest with one config and one layer, as falcoctl pushes it."""
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [layer.as_json()],
    }
    if annotations:
        body["annotations"] = annotations
    return json.dumps(body, separators=(",", ":")).encode()


def build_index(manifests: list[Descriptor], annotations: dict[str, str]) -> bytes:
    """An OCI image index with one manifest per platform."""
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [m.as_json() for m in manifests],
    }
    if annotations:
        body["annotations"] = annotations
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class ArtifactManifest:
    """A parsed Falco artifact manifest: its config and its single layer."""

    config: Descriptor
    layer: Descriptor
    artifact_type: ArtifactType
    annotations: dict[str, str]

    @property
    def filename(self) -> str:
        return self.layer.annotations.get(ANNOTATION_TITLE, "")


def parse_json_object(data: bytes, *, where: str) -> dict[str, Any]:
    """A JSON object from bytes (bounded: depth, size, numbers), or an IntegrityError naming
    ``where``."""
    try:
        raw = loads_json(data, where=where)
    except InputLimitError as err:
        raise IntegrityError(err.message, hint="is this an OCI artifact?") from None
    except ValueError:
        raise IntegrityError(f"{where}: not valid JSON", hint="is this an OCI artifact?") from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"{where}: not a JSON object")
    return raw


def parse_artifact_manifest(data: bytes, *, where: str) -> ArtifactManifest:
    """Check that a manifest is a Falco artifact (Falco config and layer media types, one layer)."""
    raw = parse_json_object(data, where=where)
    media_type = raw.get("mediaType", OCI_MANIFEST)
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise IntegrityError(f"{where}: unexpected manifest media type {_short(media_type)}")
    config = Descriptor.from_json(raw.get("config"), where=f"{where} config")
    layers = raw.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        count = len(layers) if isinstance(layers, list) else 0
        raise IntegrityError(
            f"{where}: a Falco artifact has exactly one layer, this manifest has {count}",
            hint="is this a Falco artifact (rulesfile, plugin or asset)?",
        )
    layer = Descriptor.from_json(layers[0], where=f"{where} layer")
    kind = ArtifactType.from_layer_media_type(layer.media_type)
    if kind is None:
        raise IntegrityError(
            f"{where}: unexpected layer media type {layer.media_type!r}",
            hint="is this a Falco artifact (rulesfile, plugin or asset)?",
        )
    config_kind = ArtifactType.from_config_media_type(config.media_type)
    if config_kind is not None and config_kind is not kind:
        raise IntegrityError(
            f"{where}: config media type {config.media_type!r} does not match layer type {kind}"
        )
    return ArtifactManifest(
        config=config,
        layer=layer,
        artifact_type=kind,
        annotations=annotations_of(raw, where),
    )


def select_platform(data: bytes, platform: Platform, *, where: str) -> Descriptor:
    """The manifest descriptor for ``platform`` inside an image index."""
    raw = parse_json_object(data, where=where)
    manifests = raw.get("manifests")
    if not isinstance(manifests, list):
        raise IntegrityError(f"{where}: image index without manifests")
    found = [Descriptor.from_json(m, where=where) for m in manifests]
    for desc in found:
        if desc.platform is not None and desc.platform == platform:
            return desc
    available = ", ".join(sorted(str(d.platform) for d in found if d.platform)) or "none"
    raise NotFoundError(
        f"{where}: no manifest for platform {platform} (available: {available})",
        hint="pass --platform with one of the available platforms",
    )
