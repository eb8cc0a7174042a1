"""The artifact and registry commands as single calls: config layering, client, index, verify.

This is the one adapter between the layered configuration (``falcoctl_py.config``) and the core
(``oci``, ``resolve``, ``install``, ``push``), which take plain arguments. A flag the user did not
give arrives here as ``None`` and falls back to the environment, then the config file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falcoctl_py.errors import NotFoundError, UsageError
from falcoctl_py.oci.client import RegistryClient, RegistryCredentials
from falcoctl_py.oci.media import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Platform,
    current_platform,
    parse_artifact_manifest,
    select_platform,
)
from falcoctl_py.oci.reference import sort_tags

if TYPE_CHECKING:
    from falcoctl_py.artifact.falco_yaml import FalcoConfigUpdate
    from falcoctl_py.artifact.install import InstallDirs, InstallResult, Progress
    from falcoctl_py.artifact.resolve import IndexLookup
    from falcoctl_py.config import Config, FollowConfig, InstallConfig
    from falcoctl_py.push import PullResult, PushResult

log = logging.getLogger(__name__)

SIGNATURE_TAG_RE = re.compile(r"^sha256-[0-9a-f]{64}(\.[a-z]+)?$")


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How to reach registries: plain HTTP, an extra CA, or no verification."""

    plain_http: bool = False
    ca_file: Path | None = None
    insecure_skip_tls_verify: bool = False


@dataclass(slots=True)
class ArtifactTags:
    """The tags of one artifact (signature tags hidden)."""

    ref: str
    tags: list[str]


def load(config_path: Path) -> Config:
    from falcoctl_py.config import load_config

    return load_config(config_path)


def make_client(
    config: Config | None, tls: TlsOptions, *, timeout: float | None = None
) -> RegistryClient:
    """A registry client whose credentials come from the config, env and credential stores."""

    def credentials(host: str) -> RegistryCredentials | None:
        if config is None:
            return None
        from falcoctl_py.oci.auth import credentials_for, oauth_token_for

        basic = credentials_for(host, config)
        if basic is not None:
            return RegistryCredentials(username=basic.username, password=basic.password)
        token = oauth_token_for(
            host,
            config,
            ca_file=tls.ca_file,
            insecure_skip_tls_verify=tls.insecure_skip_tls_verify,
        )
        return RegistryCredentials(access_token=token) if token else None

    return RegistryClient(
        plain_http=tls.plain_http,
        ca_file=tls.ca_file,
        insecure_skip_tls_verify=tls.insecure_skip_tls_verify,
        credentials=credentials,
        timeout=timeout,
    )


class _IndexView:
    """Name -> index entry, and every entry; the merged indexes load on first use only."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._merged: Any = None

    def _index(self) -> Any:
        if self._merged is None:
            from falcoctl_py.index.search import load_merged_index

            self._merged = load_merged_index(self._config)
        return self._merged

    def __call__(self, name: str) -> Any:
        merged = self._index()
        entry = merged.get(name)
        if entry is None and merged.unreachable:  # it may be in an index we could not read
            raise NotFoundError(
                f"cannot find {name} in the reachable indexes; {merged.missing_hint()}",
                hint="check the network, or use a full reference HOST/REPOSITORY:TAG",
            )
        return entry

    def entries(self) -> list[Any]:
        return list(self._index().entries())


def index_lookup(config: Config) -> IndexLookup:
    """Name -> index entry (also an :class:`~falcoctl_py.artifact.resolve.IndexListing`)."""
    return _IndexView(config)


def make_verify(
    config: Config,
    client: RegistryClient,
    *,
    no_verify: bool | None,
    verify_key: str | None = None,
    trusted_root: Path | None = None,
) -> Callable[..., None] | None:
    """The signature hook for install (None when verification is off)."""
    from falcoctl_py.config import read_config_file
    from falcoctl_py.signing.policy import settings_from_config

    data = read_config_file(config.path, create=False) if config.path else {}
    settings = settings_from_config(
        data, no_verify=no_verify, verify_key=verify_key, trusted_root=trusted_root
    )
    if settings.no_verify:
        from falcoctl_py.signing.verify import make_verifier

        return make_verifier(settings=settings, client=client)  # warns, returns None
    hook: list[Callable[..., None] | None] = []

    def verify(registry: str, repository: str, digest: str, entry: object = None) -> None:
        """The signing verifier, loaded only when a policy applies (most installs: none)."""
        if settings.policy_for(f"{registry}/{repository}", entry) is None:
            return
        if not hook:
            from falcoctl_py.signing.verify import make_verifier

            hook.append(make_verifier(settings=settings, client=client))
        if hook[0] is not None:
            hook[0](registry, repository, digest, entry)

    return verify


def platform_or_current(text: str | None) -> Platform:
    """The ``--platform`` value, or this machine's."""
    return Platform.parse(text) if text else current_platform()


def install_dirs(
    defaults: InstallConfig | FollowConfig,
    *,
    rulesfiles_dir: Path | None,
    plugins_dir: Path | None,
    assets_dir: Path | None,
) -> InstallDirs:
    """The destination flags, falling back to the config's (install or follow section)."""
    from falcoctl_py.artifact.install import InstallDirs

    return InstallDirs(
        rulesfiles=rulesfiles_dir or defaults.rulesfiles_dir,
        plugins=plugins_dir or defaults.plugins_dir,
        assets=assets_dir or defaults.assets_dir,
    )


def parse_allowed_types(values: Sequence[str] | None, config: Config) -> list[str]:
    """``--allowed-types`` (comma-separated, repeatable), or the config's ``allowedTypes``."""
    if not values:
        return list(config.artifact.allowed_types)
    out = [t.strip() for v in values for t in v.split(",") if t.strip()]
    bad = [t for t in out if t not in ("rulesfile", "plugin", "asset")]
    if bad:
        raise UsageError(f"unknown artifact type {bad[0]!r}", hint="use rulesfile, plugin, asset")
    return out


def install(
    *,
    config_path: Path,
    refs: Sequence[str],
    rulesfiles_dir: Path | None = None,
    plugins_dir: Path | None = None,
    assets_dir: Path | None = None,
    state_dir: Path | None = None,
    allowed_types: Sequence[str] | None = None,
    platform: str | None = None,
    resolve_deps: bool | None = None,
    no_verify: bool | None = None,
    tls: TlsOptions = TlsOptions(),
    progress: Progress | None = None,
    verify_key: str | None = None,
    trusted_root: Path | None = None,
    update_config: Path | None = None,
    for_detector: bool = False,
) -> InstallResult:
    """``artifact install``: flags over ``FALCOCTL_*`` over the config file.

    ``for_detector``: install for the bundled detector, whose built-in plugins (``container``)
    satisfy dependencies; without it a Falco user gets every dependency resolved and installed.
    """
    from falcoctl_py.artifact.install import install_artifacts
    from falcoctl_py.artifact.resolve import DETECTOR_PROVIDES

    if update_config is not None:
        from falcoctl_py.artifact.falco_yaml import check_falco_config

        check_falco_config(update_config)  # refuse before anything is installed
    config = load(config_path)
    inst = config.artifact.install
    # install_artifacts takes the state-directory lock (install and follow exclude each other)
    with make_client(config, tls) as client:
        verify = make_verify(
            config,
            client,
            no_verify=no_verify or None,
            verify_key=verify_key,
            trusted_root=trusted_root,
        )
        result = install_artifacts(
            refs=list(refs) or list(inst.refs),
            client=client,
            lookup=index_lookup(config),
            dirs=install_dirs(
                inst, rulesfiles_dir=rulesfiles_dir, plugins_dir=plugins_dir, assets_dir=assets_dir
            ),
            state_dir=state_dir or inst.state_dir,
            platform=platform_or_current(platform),
            allowed_types=parse_allowed_types(allowed_types, config),
            resolve_deps=inst.resolve_deps if resolve_deps is None else resolve_deps,
            verify=verify,
            progress=progress,
            provided=DETECTOR_PROVIDES if for_detector else None,
        )
    if update_config is not None:
        result.falco_config_update = _update_falco_config(update_config, result)
    return result


def _update_falco_config(path: Path, result: InstallResult) -> FalcoConfigUpdate:
    """List what was installed in the falco.yaml at ``path`` (rules files, plugins)."""
    from falcoctl_py.artifact.falco_yaml import update_falco_config

    rules: list[str] = []
    plugins: dict[str, str] = {}
    for item in result.artifacts:  # absolute: Falco does not resolve against our cwd
        if item.type == "rulesfile":
            rules.extend(os.path.abspath(f) for f in item.files if f.endswith((".yaml", ".yml")))
        elif item.type == "plugin":
            libs = [os.path.abspath(f) for f in item.files if f.endswith(".so")]
            if libs:
                plugins[item.name] = libs[0]
    return update_falco_config(path, rules, plugins)


def info(*, config_path: Path, refs: Sequence[str], tls: TlsOptions) -> list[ArtifactTags]:
    """``artifact info``: the tags of each reference, without cosign signature tags."""
    from falcoctl_py.artifact.resolve import parse_artifact_ref

    config = load(config_path)
    lookup = index_lookup(config)
    out = []
    with make_client(config, tls) as client:
        for text in refs:
            aref = parse_artifact_ref(text, lookup)
            tags = [t for t in client.list_tags(aref.ref.name) if not SIGNATURE_TAG_RE.match(t)]
            out.append(ArtifactTags(ref=aref.ref.name, tags=sort_tags(tags)))
    return out


def _platform_manifest(
    client: RegistryClient, text: str, lookup: IndexLookup, platform: str | None
) -> tuple[str, bytes]:
    from falcoctl_py.artifact.resolve import parse_artifact_ref, pin

    ref = pin(parse_artifact_ref(text, lookup), client.list_tags)
    got = client.get_manifest(ref.name, ref.target)
    data = got.data
    if got.media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        desc = select_platform(data, platform_or_current(platform), where=str(ref))
        data = client.get_manifest(ref.name, desc.digest).data
    return ref.name, data


def manifest(*, config_path: Path, ref: str, platform: str | None, tls: TlsOptions) -> bytes:
    """``artifact manifest``: the raw manifest JSON (the platform's, for an image index)."""
    config = load(config_path)
    with make_client(config, tls) as client:
        return _platform_manifest(client, ref, index_lookup(config), platform)[1]


def config_blob(*, config_path: Path, ref: str, platform: str | None, tls: TlsOptions) -> bytes:
    """``artifact config``: the raw config JSON of an artifact."""
    config = load(config_path)
    with make_client(config, tls) as client:
        repo, data = _platform_manifest(client, ref, index_lookup(config), platform)
        parsed = parse_artifact_manifest(data, where=ref)
        return client.get_blob_bytes(repo, parsed.config.digest, size=parsed.config.size)


def push(
    *,
    config_path: Path,
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
    tls: TlsOptions = TlsOptions(),
    sign_key: Path | None = None,
) -> PushResult:
    """``registry push`` (then ``sign_artifact`` when a cosign.key is given)."""
    from falcoctl_py.push import push_artifact

    config = load(config_path)
    if sign_key is not None:  # a bad key or password fails before anything is pushed
        from falcoctl_py.signing.sign import read_private_key

        read_private_key(sign_key)
    with make_client(config, tls) as client:
        result = push_artifact(
            client=client,
            ref=ref,
            files=files,
            artifact_type=artifact_type,
            version=version,
            tags=tags,
            add_floating_tags=add_floating_tags,
            requires=requires,
            depends_on=depends_on,
            annotation_source=annotation_source,
            name=name,
            platforms=platforms,
        )
        if sign_key is not None:
            from falcoctl_py.signing.sign import sign_artifact

            signed = sign_artifact(
                client=client,
                repository=result.ref.rsplit(":", 1)[0],
                digest=result.digest,
                key_path=sign_key,
            )
            log.info("signed %s (%s, %s)", signed.reference, signed.sig_tag, signed.referrers)
        return result


def pull(
    *, config_path: Path, ref: str, dest_dir: Path, platform: str | None, tls: TlsOptions
) -> PullResult:
    """``registry pull``: the layer (tar.gz) of a full reference into ``dest_dir``."""
    from falcoctl_py.push import pull_artifact

    config = load(config_path)
    with make_client(config, tls) as client:
        return pull_artifact(
            client=client, ref=ref, dest_dir=dest_dir, platform=platform_or_current(platform)
        )
