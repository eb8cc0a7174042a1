"""The ``index.yaml`` format: typed, bounded entries parsed from untrusted YAML.

An index is a YAML list of entries (falcoctl's format); each entry names an artifact, its type
and where it lives (``registry``/``repository``), plus optional metadata and cosign signature
data. An index comes from a server or a file the user does not control, so parsing is bounded
(:mod:`falcoctl_py.bounded`: size, depth, aliases expanded) and every field is typed: a registry
is ``host[:port]``, a repository is an OCI repository name, texts and lists have a bounded size.
Any problem is one :class:`LocatedError` naming the source and the entry's line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from falcoctl_py.bounded import Limits, check_expansion, check_yaml
from falcoctl_py.errors import LocatedError
from falcoctl_py.oci.reference import HOST_RE, REPO_COMPONENT_RE
from falcoctl_py.textio import dump_yaml

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_INDEX_BYTES = 32 * 1024 * 1024
INDEX_LIMITS = Limits(max_bytes=MAX_INDEX_BYTES, max_depth=16, max_aliases=256,
                      max_nodes=2_000_000)
MAX_TEXT = 64 * 1024  # a description, a URL, a license
MAX_LIST = 1024  # keywords, sources, maintainers
MAX_REPOSITORY = 255
ENTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Maintainer:
    """A maintainer of an artifact."""

    name: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class CosignSignature:
    """Cosign verification data of an entry (the cosign CLI's flags, by name)."""

    certificate_oidc_issuer: str = ""
    certificate_oidc_issuer_regexp: str = ""
    certificate_identity: str = ""
    certificate_identity_regexp: str = ""
    certificate_github_workflow: str = ""
    key: str = ""
    ignore_tlog: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    """``signature:`` of an entry."""

    cosign: CosignSignature | None = None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One artifact of an index; ``index`` is the name of the index it came from."""

    name: str
    type: str
    registry: str
    repository: str
    description: str = ""
    home: str = ""
    keywords: list[str] = field(default_factory=list)
    license: str = ""
    maintainers: list[Maintainer] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    signature: Signature | None = None
    index: str = ""

    @property
    def ref(self) -> str:
        """``registry/repository`` without a tag."""
        return f"{self.registry}/{self.repository}"

    def to_yaml_data(self) -> dict[str, Any]:
        """The entry as falcoctl writes it in an index.yaml."""
        data: dict[str, Any] = {
            "name": self.name, "type": self.type, "registry": self.registry,
            "repository": self.repository,
        }
        if self.signature is not None and self.signature.cosign is not None:
            c = self.signature.cosign
            data["signature"] = {"cosign": {
                "certificate-oidc-issuer": c.certificate_oidc_issuer,
                "certificate-oidc-issuer-regexp": c.certificate_oidc_issuer_regexp,
                "certificate-identity": c.certificate_identity,
                "certificate-identity-regexp": c.certificate_identity_regexp,
                "certificate-github-workflow": c.certificate_github_workflow,
                "key": c.key,
                "ignore-tlog": c.ignore_tlog,
            }}
        data.update({
            "description": self.description, "home": self.home, "keywords": list(self.keywords),
            "license": self.license,
            "maintainers": [{"email": m.email, "name": m.name} for m in self.maintainers],
            "sources": list(self.sources),
        })
        return data


def valid_registry(text: str) -> bool:
    """True for ``host[:port]`` (a DNS name, IPv4 or bracketed IPv6; port 1-65535)."""
    if len(text) > 255 or not HOST_RE.match(text):
        return False
    port = text.rsplit(":", 1)[1] if ":" in text and not text.endswith("]") else ""
    return not port or 0 < int(port) <= 65535


def valid_repository(text: str) -> bool:
    """True for an OCI repository name: lower-case components joined by ``/``."""
    return 0 < len(text) <= MAX_REPOSITORY and all(
        REPO_COMPONENT_RE.match(part) for part in text.split("/")
    )


# ---------------------------------------------------------------------------------------------
# parsing


def parse_index(data: bytes | str, *, source: str, index_name: str = "") -> list[IndexEntry]:
    """Parse an index.yaml; any problem raises ``LocatedError`` naming ``source`` and the line."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    check_yaml(text, where=source, limits=INDEX_LIMITS)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        check_expansion(root, where=source, limits=INDEX_LIMITS)
        if not isinstance(root, yaml.SequenceNode):
            raise LocatedError(
                "an index must be a YAML list of entries", path=source,
                line=root.start_mark.line + 1, hint="check the URL points at an index.yaml",
            )
        entries: list[IndexEntry] = []
        seen: dict[str, int] = {}
        for node in root.value:
            line = node.start_mark.line + 1
            if not isinstance(node, yaml.MappingNode):
                raise LocatedError("an index entry must be a mapping", path=source, line=line)
            raw = loader.construct_mapping(node, deep=True)
            entry = _Fields(raw, source, line).entry(index_name)
            if entry.name in seen:
                raise LocatedError(
                    f"duplicate entry {entry.name!r} (first at line {seen[entry.name]})",
                    path=source, line=line,
                )
            seen[entry.name] = line
            entries.append(entry)
        return entries
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise LocatedError(
            f"invalid YAML: {problem}", path=source,
            line=mark.line + 1 if mark is not None else None,
            hint="the index is malformed; fix it or ask its maintainer",
        ) from None
    finally:
        loader.dispose()


class _Fields:
    """Typed, bounded reads of one raw entry; errors name the source and the entry's line."""

    def __init__(self, raw: dict[Any, Any], source: str, line: int) -> None:
        self.raw, self.source, self.line = raw, source, line

    def fail(self, message: str, hint: str | None = None) -> LocatedError:
        return LocatedError(message, path=self.source, line=self.line, hint=hint)

    def text(self, key: str, *, required: bool = False, raw: Any = None) -> str:
        value = self.raw.get(key) if raw is None else raw.get(key)
        if value is None or value == "":
            if required:
                raise self.fail(f"index entry has no {key!r}")
            return ""
        if isinstance(value, dict | list):
            raise self.fail(f"index entry field {key!r} must be a string")
        out = str(value)
        if len(out) > MAX_TEXT or "\x00" in out:
            raise self.fail(f"index entry field {key!r} is longer than {MAX_TEXT} characters "
                            "or holds a NUL byte")
        return out

    def texts(self, key: str) -> list[str]:
        value = self.raw.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
            raise self.fail(f"index entry field {key!r} must be a list of strings")
        if len(value) > MAX_LIST or any(len(str(v)) > MAX_TEXT for v in value):
            raise self.fail(f"index entry field {key!r} is too long (at most {MAX_LIST} items)")
        return [str(v) for v in value]

    def maintainers(self) -> list[Maintainer]:
        value = self.raw.get("maintainers") or []
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            raise self.fail("index entry maintainers must be mappings with name and email")
        if len(value) > MAX_LIST:
            raise self.fail(f"index entry has more than {MAX_LIST} maintainers")
        return [Maintainer(name=self.text("name", raw=m), email=self.text("email", raw=m))
                for m in value]

    def signature(self) -> Signature | None:
        sig = self.raw.get("signature")
        if sig is None:
            return None
        if not isinstance(sig, dict) or not isinstance(sig.get("cosign") or {}, dict):
            raise self.fail("index entry signature must be a mapping")
        cosign = sig.get("cosign")
        if cosign is None:
            return Signature(cosign=None)
        ignore = cosign.get("ignore-tlog") or False
        if not isinstance(ignore, bool):
            raise self.fail("index entry signature.cosign.ignore-tlog must be true or false")
        key = self.text("key", raw=cosign)
        if len(key) > 4096:
            raise self.fail("index entry signature.cosign.key is not a file path")
        return Signature(cosign=CosignSignature(
            certificate_oidc_issuer=self.text("certificate-oidc-issuer", raw=cosign),
            certificate_oidc_issuer_regexp=self.text("certificate-oidc-issuer-regexp", raw=cosign),
            certificate_identity=self.text("certificate-identity", raw=cosign),
            certificate_identity_regexp=self.text("certificate-identity-regexp", raw=cosign),
            certificate_github_workflow=self.text("certificate-github-workflow", raw=cosign),
            key=key,
            ignore_tlog=ignore,
        ))

    def entry(self, index_name: str) -> IndexEntry:
        name = self.text("name", required=True)
        if not ENTRY_NAME_RE.match(name):
            raise self.fail(f"invalid entry name {name[:80]!r}",
                            hint="names are letters, digits, '.', '_' and '-'")
        kind = self.text("type")
        if kind and not TYPE_RE.match(kind):
            raise self.fail(f"entry {name!r}: invalid type {kind[:80]!r}",
                            hint="use rulesfile, plugin or asset")
        registry = self.text("registry", required=True)
        if not valid_registry(registry):
            raise self.fail(f"entry {name!r}: invalid registry {registry[:80]!r}",
                            hint="a registry is HOST[:PORT], e.g. ghcr.io")
        repository = self.text("repository", required=True)
        if not valid_repository(repository):
            raise self.fail(f"entry {name!r}: invalid repository {repository[:80]!r}",
                            hint="a repository is lower-case path components, "
                            "e.g. falcosecurity/rules/falco-rules")
        return IndexEntry(
            name=name, type=kind, registry=registry, repository=repository,
            description=self.text("description"), home=self.text("home"),
            keywords=self.texts("keywords"), license=self.text("license"),
            maintainers=self.maintainers(), sources=self.texts("sources"),
            signature=self.signature(), index=index_name,
        )


def dump_index(entries: Iterable[IndexEntry]) -> str:
    """An index.yaml for ``entries``, sorted by name (falcoctl's normal form)."""
    return dump_yaml([e.to_yaml_data() for e in sorted(entries, key=lambda e: e.name)])
