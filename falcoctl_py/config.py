"""falcoctl's ``falcoctl.yaml`` and ``FALCOCTL_*`` variables as one layered, typed model.

Layering is falcoctl's: a command-line flag beats an environment variable, which beats the
config file, which beats the built-in default. Keys in the file are case-insensitive (like viper:
``resolveDeps`` and ``resolvedeps`` are the same key). List-valued variables use falcoctl's
encodings (``FALCOCTL_INDEXES=name,url;name2,url2``, ``FALCOCTL_ARTIFACT_ALLOWEDTYPES=a,b``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from falcoctl_py.errors import ConfigError

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

_SEMICOLON_LIST = re.compile(r"^([^;]+)(;[^;]+)*$")
_COMMA_LIST = re.compile(r"^([^,]+)(,[^,]+)*$")
_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}


@dataclass(frozen=True, slots=True)
class IndexRef:
    """A configured index: its name, URL and backend (http, https or file)."""

    name: str
    url: str
    backend: str = ""


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


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A positive Go duration (``168h``, ``1h30m``, ``90s``, ``500ms``) in seconds."""
    value = text.strip()
    if value in ("0", ""):
        raise ConfigError(f"invalid duration {text!r}: it must be positive", hint="use e.g. 6h")
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            raise ConfigError(
                f"invalid duration {text!r}", hint="use a number and a unit: ns, us, ms, s, m or h"
            )
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if total <= 0:
        raise ConfigError(f"invalid duration {text!r}: it must be positive", hint="use e.g. 6h")
    return total


# ---------------------------------------------------------------------------------------------
# reading


def read_config_file(
    path: Path, *, create: bool = True
) -> dict[str, Any]:
    """The file's content with lower-cased keys; created with defaults (dir 0700) when missing."""
    import yaml

    from falcoctl_py.textio import dump_yaml, write_atomic

    if not path.exists():
        if not create:
            return {}
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, dump_yaml(default_file_content()).encode(), mode=0o644)
        except OSError as err:
            raise ConfigError(
                f"cannot create the config file: {err.strerror}", path=str(path),
                hint="pass --config with a writable path",
            ) from err
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", path=str(path)) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"invalid YAML: {problem}", path=where, hint="fix the file or remove it to get defaults"
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", path=str(path))
    lowered: dict[str, Any] = _lower_keys(data)
    return lowered


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _env(env: Mapping[str, str], key: str) -> str | None:
    """The variable of a dotted key (``artifact.install.refs``: FALCOCTL_ARTIFACT_INSTALL_REFS)."""
    value = env.get(_env_name(key))
    return value if value else None  # viper treats an empty variable as unset


def _env_name(key: str) -> str:
    return "FALCOCTL_" + re.sub(r"[.-]", "_", key).upper()


def _split(value: str, key: str, *, sep: str) -> list[str]:
    pattern = _SEMICOLON_LIST if sep == ";" else _COMMA_LIST
    if not pattern.match(value):
        raise ConfigError(
            f"{_env_name(key)} is not a {'semicolon' if sep == ';' else 'comma'}-separated list",
            hint=f"use item1{sep}item2 without empty items",
        )
    return [item.strip() for item in value.split(sep)]


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return [str(v) for v in value]


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



def _str(value: Any, where: str) -> str:
    if isinstance(value, dict | list):
        raise ConfigError(f"{where} must be a string")
    return "" if value is None else str(value)


def _mappings(value: Any, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where} must be a list of mappings")
    return value


def _scalar(data: Mapping[str, Any], env: Mapping[str, str], key: str) -> Any:
    from_env = _env(env, key)
    return from_env if from_env is not None else _get(data, key)


def _path(data: Mapping[str, Any], env: Mapping[str, str], key: str, default: Path) -> Path:
    value = _scalar(data, env, key)
    return Path(os.path.expanduser(_str(value, key))) if value not in (None, "") else default


def _list(data: Mapping[str, Any], env: Mapping[str, str], key: str, *, sep: str) -> list[str]:
    from_env = _env(env, key)
    if from_env is not None:
        return _split(from_env, key, sep=sep)
    return _str_list(_get(data, key), key)


# ---------------------------------------------------------------------------------------------
# building the model


def _indexes(data: Mapping[str, Any], env: Mapping[str, str]) -> list[IndexRef]:
    raw = _env(env, "indexes")
    if raw is not None:
        out = []
        for item in _split(raw, "indexes", sep=";"):
            fields = [f.strip() for f in item.split(",")]
            if len(fields) not in (2, 3) or not all(fields[:2]):
                raise ConfigError(
                    "FALCOCTL_INDEXES items must be name,url (or name,url,backend)",
                    hint="e.g. FALCOCTL_INDEXES=falcosecurity,https://example.org/index.yaml",
                )
            out.append(IndexRef(fields[0], fields[1], fields[2] if len(fields) == 3 else ""))
        return out
    result = []
    for entry in _mappings(_get(data, "indexes"), "indexes"):
        name = _str(entry.get("name"), "indexes[].name")
        url = _str(entry.get("url"), "indexes[].url")
        if not name or not url:
            raise ConfigError("every item of indexes needs a name and a url")
        result.append(IndexRef(name, url, _str(entry.get("backend"), "indexes[].backend")))
    return result


def _registry(data: Mapping[str, Any], env: Mapping[str, str]) -> RegistryConfig:
    creds = _scalar(data, env, "registry.creds.config")
    creds_path = Path(os.path.expanduser(str(creds))) if creds else default_creds_config()

    basic: list[BasicAuth] = []
    raw = _env(env, "registry.auth.basic")
    if raw is not None:
        for item in _split(raw, "registry.auth.basic", sep=";"):
            fields = item.split(",", 2)
            if len(fields) != 3 or not fields[0]:
                raise ConfigError(
                    "FALCOCTL_REGISTRY_AUTH_BASIC items must be registry,user,password",
                )
            basic.append(BasicAuth(fields[0].strip(), fields[1], fields[2]))
    else:
        for entry in _mappings(_get(data, "registry.auth.basic"), "registry.auth.basic"):
            basic.append(BasicAuth(
                _str(entry.get("registry"), "registry.auth.basic[].registry"),
                _str(entry.get("user"), "registry.auth.basic[].user"),
                _str(entry.get("password"), "registry.auth.basic[].password"),
            ))

    oauth: list[OAuthClient] = []
    raw = _env(env, "registry.auth.oauth")
    if raw is not None:
        for item in _split(raw, "registry.auth.oauth", sep=";"):
            fields = item.split(",")
            if len(fields) != 4 or not all(fields):
                raise ConfigError(
                    "FALCOCTL_REGISTRY_AUTH_OAUTH items must be "
                    "registry,clientID,clientSecret,tokenURL",
                )
            oauth.append(OAuthClient(fields[0].strip(), fields[1], fields[2], fields[3].strip()))
    else:
        for entry in _mappings(_get(data, "registry.auth.oauth"), "registry.auth.oauth"):
            oauth.append(OAuthClient(
                _str(entry.get("registry"), "registry.auth.oauth[].registry"),
                _str(entry.get("clientid"), "registry.auth.oauth[].clientID"),
                _str(entry.get("clientsecret"), "registry.auth.oauth[].clientSecret"),
                _str(entry.get("tokenurl"), "registry.auth.oauth[].tokenURL"),
                _str_list(entry.get("scopes"), "registry.auth.oauth[].scopes"),
            ))

    raw = _env(env, "registry.auth.gcp")
    if raw is not None:
        gcp = _split(raw, "registry.auth.gcp", sep=";")
    else:
        gcp = []
        for value in _get(data, "registry.auth.gcp") or []:
            gcp.append(_str(value.get("registry") if isinstance(value, dict) else value, "gcp"))
    return RegistryConfig(creds_path, basic, oauth, gcp)


def _allowed_types(data: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    types = _list(data, env, "artifact.allowedtypes", sep=",")
    for kind in types:
        if kind not in ARTIFACT_TYPES:
            raise ConfigError(
                f"artifact.allowedTypes: unknown type {kind!r}",
                hint=f"use {', '.join(ARTIFACT_TYPES)}",
            )
    return types


def _install(data: Mapping[str, Any], env: Mapping[str, str]) -> InstallConfig:
    p = "artifact.install."
    resolve = _scalar(data, env, p + "resolvedeps")
    return InstallConfig(
        refs=_list(data, env, p + "refs", sep=";"),
        resolve_deps=(
            True if resolve is None else parse_bool(resolve, "artifact.install.resolveDeps")
        ),
        rulesfiles_dir=_path(data, env, p + "rulesfilesdir", DEFAULT_RULESFILES_DIR),
        plugins_dir=_path(data, env, p + "pluginsdir", DEFAULT_PLUGINS_DIR),
        assets_dir=_path(data, env, p + "assetsdir", DEFAULT_ASSETS_DIR),
        state_dir=_path(data, env, p + "statedir", DEFAULT_STATE_DIR),
    )


def _follow(data: Mapping[str, Any], env: Mapping[str, str]) -> FollowConfig:
    p = "artifact.follow."
    every = _str(_scalar(data, env, p + "every"), "artifact.follow.every") or DEFAULT_FOLLOW_EVERY
    parse_duration(every)
    behavior = _str(_scalar(data, env, p + "startupbehavior"), "startupBehavior") or "jitter"
    if behavior not in STARTUP_BEHAVIORS:
        raise ConfigError(
            f"artifact.follow.startupBehavior: unknown value {behavior!r}",
            hint=f"use {', '.join(STARTUP_BEHAVIORS)}",
        )
    tmp = _scalar(data, env, p + "tmpdir")
    return FollowConfig(
        refs=_list(data, env, p + "refs", sep=";"),
        every=every,
        cron=_str(_scalar(data, env, p + "cron"), "artifact.follow.cron"),
        startup_behavior=behavior,
        falco_versions=_str(_scalar(data, env, p + "falcoversions"), "falcoVersions")
        or DEFAULT_FALCO_VERSIONS,
        rulesfiles_dir=_path(data, env, p + "rulesfilesdir", DEFAULT_RULESFILES_DIR),
        plugins_dir=_path(data, env, p + "pluginsdir", DEFAULT_PLUGINS_DIR),
        assets_dir=_path(data, env, p + "assetsdir", DEFAULT_ASSETS_DIR),
        state_dir=_path(data, env, p + "statedir", DEFAULT_STATE_DIR),
        tmp_dir=Path(str(tmp)) if tmp else None,
    )


def _driver(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    driver = dict(DEFAULT_DRIVER)
    section = _get(data, "driver")
    if isinstance(section, dict):
        driver.update(section)
    for key in ("type", "repos"):
        raw = _env(env, f"driver.{key}")
        if raw is not None:
            driver[key] = _split(raw, f"driver.{key}", sep=";")
        elif isinstance(driver[key], str):
            driver[key] = [driver[key]]
    for key in ("version", "name", "hostroot"):
        raw = _env(env, f"driver.{key}")
        if raw is not None:
            driver[key] = raw
    if key_host := env.get("HOST_ROOT"):
        driver["hostroot"] = key_host
    return driver


def config_from_data(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, path: Path | None = None
) -> Config:
    """Build the model from parsed file content (lower-cased keys) with ``env`` on top."""
    env = os.environ if env is None else env
    data = _lower_keys(dict(data))
    try:
        no_verify = _scalar(data, env, "artifact.noverify")
        return Config(
            indexes=_indexes(data, env),
            registry=_registry(data, env),
            artifact=ArtifactConfig(
                allowed_types=_allowed_types(data, env),
                no_verify=(
                    False if no_verify is None else parse_bool(no_verify, "artifact.noVerify")
                ),
                install=_install(data, env),
                follow=_follow(data, env),
            ),
            driver=_driver(data, env),
            path=path,
        )
    except ConfigError as err:
        if path is not None and err.path is None:
            raise ConfigError(err.message, path=str(path), hint=err.hint) from err
        raise


def load_config(
    path: Path, *, create: bool = True, env: Mapping[str, str] | None = None
) -> Config:
    """Read ``falcoctl.yaml`` (created with defaults when missing) with ``FALCOCTL_*`` on top."""
    return config_from_data(read_config_file(path, create=create), env=env, path=path)


# ---------------------------------------------------------------------------------------------
# writing


def _edit_file(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the config file's mapping and rewrite it atomically, keeping its
    comments, key order, spellings and mode (created with defaults first when missing)."""
    import io

    from ruamel.yaml.error import YAMLError

    from falcoctl_py.textio import roundtrip_yaml, write_atomic

    read_config_file(path, create=True)  # creates it, and reports malformed YAML clearly
    y = roundtrip_yaml()
    try:
        data = y.load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as err:
        raise ConfigError(f"cannot read: {err}", path=str(path)) from err
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    change(data)
    out = io.StringIO()
    y.dump(data, out)
    try:
        write_atomic(path, out.getvalue().encode(), mode=path.stat().st_mode & 0o777)
    except OSError as err:
        raise ConfigError(f"cannot write: {err.strerror}", path=str(path)) from err


def _key(data: dict[str, Any], key: str) -> str:
    """The spelling ``key`` already has in ``data`` (keys are case-insensitive), else ``key``."""
    return next((k for k in data if str(k).lower() == key.lower()), key)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    name = _key(data, key)
    value = data.get(name)
    if not isinstance(value, dict):
        value = {}
        data[name] = value
    return value


def save_indexes(path: Path, indexes: list[IndexRef]) -> None:
    """Replace ``indexes:`` in the config file (comments, other keys and spellings kept)."""

    def change(data: dict[str, Any]) -> None:
        data[_key(data, "indexes")] = [
            {"name": i.name, "url": i.url, "backend": i.backend} for i in indexes
        ]

    _edit_file(path, change)


def add_gcp_registry(path: Path, registry: str) -> None:
    """Append ``{registry: ...}`` to ``registry.auth.gcp`` unless present, atomically."""

    def change(data: dict[str, Any]) -> None:
        auth = _section(_section(data, "registry"), "auth")
        name = _key(auth, "gcp")
        gcp = auth.get(name) or []
        if not any((g.get("registry") if isinstance(g, dict) else g) == registry for g in gcp):
            gcp.append({"registry": registry})
        auth[name] = gcp

    _edit_file(path, change)


def save_driver(path: Path, driver: Mapping[str, Any]) -> None:
    """Replace ``driver:`` in the config file, atomically."""

    def change(data: dict[str, Any]) -> None:
        data[_key(data, "driver")] = dict(driver)

    _edit_file(path, change)


def read_file_indexes(path: Path) -> list[IndexRef]:
    """The ``indexes:`` of the config file alone (no environment), for rewriting the file."""
    return config_from_data(read_config_file(path, create=True), env={}, path=path).indexes
