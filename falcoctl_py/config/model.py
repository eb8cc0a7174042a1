"""The typed model of ``falcoctl.yaml``: frozen dataclasses, the defaults in one place, and the
value parsers every layer shares (Go durations, Go booleans)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from falcoctl_py.errors import ConfigError, UsageError

T = TypeVar("T")

DEFAULT_INDEX_NAME = "falcosecurity"
DEFAULT_INDEX_URL = "https://falcosecurity.github.io/falcoctl/index.yaml"
DEFAULT_RULESFILES_DIR = Path("/etc/falco")
DEFAULT_PLUGINS_DIR = Path("/usr/share/falco/plugins")
DEFAULT_ASSETS_DIR = Path("/etc/falco/assets")
DEFAULT_STATE_DIR = Path("/var/lib/falcoctl")
DEFAULT_FOLLOW_EVERY = "6h"  # issue 6 asks for 6h; falcoctl v0.13 uses 168h
DEFAULT_FALCO_VERSIONS = "http://localhost:8765/versions"
ARTIFACT_TYPES = ("rulesfile", "plugin", "asset")
STARTUP_BEHAVIORS = ("skip", "jitter", "immediate")
INDEX_BACKENDS = ("http", "https", "file")
DEFAULT_DRIVER: dict[str, Any] = {
    "type": ["modern_ebpf", "kmod"],
    "name": "falco",
    "repos": ["https://download.falco.org/driver"],
    "version": "",
    "hostroot": "/",
}

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"'<>]*@")
_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}

@dataclass(frozen=True, slots=True)
class IndexRef:
    """A configured index: its name, URL and backend (http, https or file)."""

    name: str
    url: str
    backend: str = ""

    def __repr__(self) -> str:  # a URL may hold credentials: never in logs or tracebacks
        url = _USERINFO.sub(r"\1***@", self.url)
        return f"IndexRef(name={self.name!r}, url={url!r}, backend={self.backend!r})"


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """Basic credentials for one registry, from the config file or the environment."""

    registry: str
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """OAuth2 client credentials (the client-credentials grant) for one registry."""

    registry: str
    client_id: str
    client_secret: str = field(repr=False)
    token_url: str = ""
    scopes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """``registry:``: the credential store and automatic logins."""

    creds_config: Path
    auth_basic: list[BasicAuth] = field(default_factory=list)
    auth_oauth: list[OAuthClient] = field(default_factory=list)
    auth_gcp: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InstallConfig:
    """``artifact.install``."""

    refs: list[str] = field(default_factory=list)
    resolve_deps: bool = True
    rulesfiles_dir: Path = DEFAULT_RULESFILES_DIR
    plugins_dir: Path = DEFAULT_PLUGINS_DIR
    assets_dir: Path = DEFAULT_ASSETS_DIR
    state_dir: Path = DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class FollowConfig:
    """``artifact.follow``; ``every`` is a Go duration string such as ``6h`` or ``1h30m``."""

    refs: list[str] = field(default_factory=list)
    every: str = DEFAULT_FOLLOW_EVERY
    cron: str = ""
    startup_behavior: str = "jitter"
    falco_versions: str = DEFAULT_FALCO_VERSIONS
    rulesfiles_dir: Path = DEFAULT_RULESFILES_DIR
    plugins_dir: Path = DEFAULT_PLUGINS_DIR
    assets_dir: Path = DEFAULT_ASSETS_DIR
    state_dir: Path = DEFAULT_STATE_DIR
    tmp_dir: Path | None = None

    @property
    def every_seconds(self) -> float:
        """``every`` in seconds."""
        return parse_duration(self.every)


@dataclass(frozen=True, slots=True)
class ArtifactConfig:
    """``artifact:``."""

    allowed_types: list[str] = field(default_factory=list)
    no_verify: bool = False
    install: InstallConfig = field(default_factory=InstallConfig)
    follow: FollowConfig = field(default_factory=FollowConfig)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole layered configuration (file, then environment on top)."""

    indexes: list[IndexRef]
    registry: RegistryConfig
    artifact: ArtifactConfig
    driver: dict[str, Any]
    path: Path | None = None


def pick(flag_value: T, flag_given: bool, config_value: T) -> T:
    """The flag's value when the user gave it, else the (env-over-file) config value."""
    return flag_value if flag_given else config_value


def user_config_dir() -> Path:
    """falcoctl's per-user directory, ``~/.config/falcoctl`` (``$HOME`` honoured)."""
    return Path(os.environ.get("HOME") or Path.home()) / ".config" / "falcoctl"


def default_creds_config() -> Path:
    """Docker's credential store: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    docker_dir = os.environ.get("DOCKER_CONFIG")
    if docker_dir:
        return Path(docker_dir) / "config.json"
    return Path(os.environ.get("HOME") or Path.home()) / ".docker" / "config.json"


def default_file_content() -> dict[str, Any]:
    """What a freshly created ``falcoctl.yaml`` holds."""
    return {
        "indexes": [{"name": DEFAULT_INDEX_NAME, "url": DEFAULT_INDEX_URL, "backend": "https"}],
        "driver": {
            "type": list(DEFAULT_DRIVER["type"]),
            "name": DEFAULT_DRIVER["name"],
            "repos": list(DEFAULT_DRIVER["repos"]),
            "version": DEFAULT_DRIVER["version"],
            "hostRoot": DEFAULT_DRIVER["hostroot"],
        },
    }


class InvalidDuration(ConfigError, UsageError):
    """A duration that is not a positive Go duration (a config value or a flag)."""


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(ns|us|µs|ms|s|m|h)")
MAX_DURATION = (2**63 - 1) / 1e9  # Go's time.Duration range, about 292 years


def parse_duration(text: str) -> float:
    """Seconds in a positive Go duration such as ``168h``, ``1h30m``, ``2s`` or ``500ms``."""
    value = str(text).strip()
    if value in ("0", ""):
        raise InvalidDuration(
            f"invalid duration {text!r}: it must be positive", hint="use e.g. 6h or 30m"
        )
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            raise InvalidDuration(
                f"invalid duration {value[:40]!r}",
                hint="use a number and a unit: ns, us, ms, s, m or h",
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if total <= 0:
        raise InvalidDuration(f"invalid duration {text!r}: it must be positive",
                              hint="use e.g. 6h")
    if total > MAX_DURATION:
        raise InvalidDuration(f"invalid duration {value[:40]!r}: longer than 292 years",
                              hint="use e.g. 6h")
    return total


def parse_bool(
    value: Any, where: str, *, also_true: frozenset[str] = frozenset(),
    also_false: frozenset[str] = frozenset(),
) -> bool:
    """A boolean as Go's ParseBool reads it (1, t, true, 0, f, false, any case), plus extras."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in also_true:
        return True
    if text in _FALSE or text in also_false:
        return False
    raise ConfigError(f"{where} must be true or false, not {str(value)!r}")
