"""Which signature an artifact must carry: from the index entry, the config or the command line.

The index entry's ``signature.cosign`` block has falcoctl's fields (``key``,
``certificate-identity``, ``certificate-identity-regexp``, ``certificate-oidc-issuer``,
``certificate-oidc-issuer-regexp``, ``ignore-tlog``; ``certificate-github-workflow`` is read
and ignored, as falcoctl does). The user's choices win over the publisher's: ``--verify-key``,
then a matching ``artifact.verify.signatures`` entry of the config, then ``artifact.verify.key``,
then the index entry.

Policies are chosen by where the bytes come from: the registry host and repository actually
pulled, normalised (:func:`normalize_repository`: case, IP forms such as ``127.1`` or
``2130706433``, ``localhost``, default and zero-padded ports) before any glob matches, and the
index entry of that repository (:func:`entry_for_repository`), never by a name inside the
artifact. Keyless verification needs a trusted root file: ``--trusted-root`` or
``artifact.verify.trustedRoot`` (``FALCOCTL_ARTIFACT_VERIFY_TRUSTEDROOT``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoctl_py.bounded import is_digits
from falcoctl_py.config import parse_bool
from falcoctl_py.errors import ConfigError

log = logging.getLogger(__name__)

# cosign's index fields and noVerify also accept yes/no, and an empty value as false.
_ALSO_TRUE = frozenset({"yes"})
_ALSO_FALSE = frozenset({"no", ""})


@dataclass(frozen=True, slots=True)
class CosignPolicy:
    """What a valid signature looks like; keyless when ``key`` is empty."""

    key: str = ""
    certificate_identity: str = ""
    certificate_identity_regexp: str = ""
    certificate_oidc_issuer: str = ""
    certificate_oidc_issuer_regexp: str = ""
    ignore_tlog: bool = False
    source: str = ""

    @property
    def keyless(self) -> bool:
        return not self.key

    def describe(self) -> str:
        if self.key:
            return f"key {self.key}"
        who = self.certificate_identity or f"~{self.certificate_identity_regexp}"
        issuer = self.certificate_oidc_issuer or f"~{self.certificate_oidc_issuer_regexp}"
        return f"identity {who} issued by {issuer}"


def _bool(value: object, where: str) -> bool:
    try:
        return parse_bool(value, where, also_true=_ALSO_TRUE, also_false=_ALSO_FALSE)
    except ConfigError:
        raise ConfigError(f"{where}: {value!r} is not a boolean") from None


def _regexp(value: str, where: str) -> str:
    if value:
        try:
            re.compile(value)
        except re.error as err:
            raise ConfigError(f"{where}: invalid regular expression {value!r}: {err}") from err
    return value


def policy_from_block(block: object, *, source: str) -> CosignPolicy | None:
    """A ``cosign:`` block (index entry or config) as a policy; None when it is empty."""
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ConfigError(f"{source}: signature.cosign is not a mapping")
    lower = {str(k).lower(): v for k, v in block.items()}

    def text(name: str) -> str:
        value = lower.get(name)
        return "" if value is None else str(value)

    policy = CosignPolicy(
        key=text("key"),
        certificate_identity=text("certificate-identity"),
        certificate_identity_regexp=_regexp(text("certificate-identity-regexp"), source),
        certificate_oidc_issuer=text("certificate-oidc-issuer"),
        certificate_oidc_issuer_regexp=_regexp(text("certificate-oidc-issuer-regexp"), source),
        ignore_tlog=_bool(lower.get("ignore-tlog", False), f"{source}: ignore-tlog"),
        source=source,
    )
    if not policy.key and not (policy.certificate_identity or policy.certificate_identity_regexp):
        raise ConfigError(
            f"{source}: signature.cosign has neither a key nor a certificate identity",
            hint="set key, or certificate-identity(-regexp) and certificate-oidc-issuer(-regexp)",
        )
    if not policy.key and not (
        policy.certificate_oidc_issuer or policy.certificate_oidc_issuer_regexp
    ):
        raise ConfigError(
            f"{source}: keyless signature.cosign has no certificate-oidc-issuer(-regexp)"
        )
    return policy


def entry_policy(entry: object) -> CosignPolicy | None:
    """The policy of an index entry (a mapping or an object with a ``signature`` attribute)."""
    if entry is None:
        return None
    signature = (
        entry.get("signature") if isinstance(entry, Mapping) else getattr(entry, "signature", None)
    )
    if signature is None:
        return None
    if not isinstance(signature, Mapping):
        cosign = getattr(signature, "cosign", None)
        if cosign is None:
            return None
        if not isinstance(cosign, Mapping):
            fields = (
                [f.name for f in dataclasses.fields(cosign)]
                if dataclasses.is_dataclass(cosign)
                else list(vars(cosign))
            )
            cosign = {name.replace("_", "-"): getattr(cosign, name) for name in fields}
    else:
        cosign = signature.get("cosign")
    name = entry.get("name") if isinstance(entry, Mapping) else getattr(entry, "name", "")
    return policy_from_block(cosign, source=f"index entry {name}")


_DOCKER_HUB = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_GLOB = re.compile(r"[*?\[\]]")


def normalize_host(host: str) -> str:
    """One spelling per registry host: lower case, IPs canonical, ``:443`` and padding dropped."""
    text = host.strip().lower().rstrip(".")
    port = ""
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        text, port = inner, rest.removeprefix(":")
    elif text.count(":") == 1:
        text, port = text.split(":")
    if is_digits(port):
        port = "" if int(port) == 443 else str(int(port))
    if text == "localhost" or text.endswith(".localhost"):
        text = "127.0.0.1"
    elif text in _DOCKER_HUB:
        text = "docker.io"
    elif re.fullmatch(r"[0-9a-fx.]+", text) and not text.endswith((".", "x")):
        # the forms inet_aton reads: 127.1, 2130706433, 0x7f.1, 0177.0.0.1
        with contextlib.suppress(OSError, ValueError):
            text = str(ipaddress.IPv4Address(socket.inet_aton(text)))
    else:
        with contextlib.suppress(ValueError):
            addr = ipaddress.ip_address(text)
            if isinstance(addr, ipaddress.IPv6Address):
                text = str(addr.ipv4_mapped or addr)
    if ":" in text:
        text = f"[{text}]"
    return f"{text}:{port}" if port else text


def normalize_repository(name: str) -> str:
    """``host/repo`` with the host normalised (:func:`normalize_host`) and the repo lower-cased."""
    host, _, repo = name.partition("/")
    if _GLOB.search(re.sub(r"^\[[0-9a-fA-F:.]+\]", "", host)):  # an IPv6 literal is no glob
        return f"{host.lower()}/{repo.lower()}"
    return f"{normalize_host(host)}/{repo.lower()}"


def entry_for_repository(entries: Iterable[object], registry: str, repository: str) -> object:
    """The index entry for the repository actually pulled (the one asking for a signature when
    several list it), or None."""
    want = normalize_repository(f"{registry}/{repository}")
    found = None
    for entry in entries:
        host = _field(entry, "registry")
        repo = _field(entry, "repository")
        same = bool(host and repo) and normalize_repository(f"{host}/{repo}") == want
        if same and (found is None or (entry_policy(found) is None and entry_policy(entry))):
            found = entry
    return found


def _field(entry: object, name: str) -> str:
    value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, "")
    return str(value or "")


@dataclass(frozen=True, slots=True)
class RepositoryPolicy:
    pattern: str
    policy: CosignPolicy


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """The verification settings of one run: config and environment with flags on top."""

    no_verify: bool = False
    verify_key: str = ""
    trusted_root: Path | None = None
    config_key: str = ""
    repository_policies: list[RepositoryPolicy] = field(default_factory=list)

    def policy_for(self, repository: str, entry: object = None) -> CosignPolicy | None:
        """The policy for ``host/repo`` (None: nothing to verify)."""
        if self.verify_key:
            return CosignPolicy(key=self.verify_key, source="--verify-key")
        where = normalize_repository(repository)
        for rule in self.repository_policies:
            if fnmatch.fnmatchcase(where, normalize_repository(rule.pattern)):
                return rule.policy
        if self.config_key:
            return CosignPolicy(key=self.config_key, source="artifact.verify.key")
        return entry_policy(entry)


def _section(data: Mapping[str, Any], *path: str) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = {str(k).lower(): v for k, v in node.items()}.get(part)
    return node


def settings_from_config(
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    no_verify: bool | None = None,
    verify_key: str | None = None,
    trusted_root: Path | None = None,
) -> VerifySettings:
    """Settings from the config file's content, ``FALCOCTL_*`` variables and flags (None: unset)."""
    env = os.environ if env is None else env
    raw_no_verify: object = _section(data, "artifact", "noverify")
    if "FALCOCTL_ARTIFACT_NOVERIFY" in env:
        raw_no_verify = env["FALCOCTL_ARTIFACT_NOVERIFY"]
    off = _bool(raw_no_verify or False, "artifact.noVerify")
    if no_verify:
        off = True
    verify = _section(data, "artifact", "verify") or {}
    if not isinstance(verify, Mapping):
        raise ConfigError("artifact.verify is not a mapping")
    root_text = env.get("FALCOCTL_ARTIFACT_VERIFY_TRUSTEDROOT") or _section(verify, "trustedroot")
    config_key = env.get("FALCOCTL_ARTIFACT_VERIFY_KEY") or _section(verify, "key") or ""
    rules = []
    for i, item in enumerate(_section(verify, "signatures") or []):
        where = f"artifact.verify.signatures[{i}]"
        pattern = _section(item, "repository")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{where}: repository (a glob on host/repository) is missing")
        policy = policy_from_block(_section(item, "cosign"), source=where)
        if policy is not None:
            rules.append(RepositoryPolicy(pattern, policy))
    return VerifySettings(
        no_verify=off,
        verify_key=verify_key or "",
        trusted_root=trusted_root or (Path(str(root_text)) if root_text else None),
        config_key=str(config_key),
        repository_policies=rules,
    )
