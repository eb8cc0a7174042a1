"""falcoctl's ``falcoctl.yaml`` and ``FALCOCTL_*`` variables as one layered, typed model.

Layering is falcoctl's: a command-line flag beats an environment variable, which beats the
config file, which beats the built-in default. Keys in the file are case-insensitive (like viper:
``resolveDeps`` and ``resolvedeps`` are the same key). List-valued variables use falcoctl's
encodings (``FALCOCTL_INDEXES=name,url;name2,url2``, ``FALCOCTL_ARTIFACT_ALLOWEDTYPES=a,b``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from falcoctl_py.bounded import safe_load_yaml
from falcoctl_py.config.model import (
    ARTIFACT_TYPES,
    DEFAULT_ASSETS_DIR,
    DEFAULT_DRIVER,
    DEFAULT_FALCO_VERSIONS,
    DEFAULT_FOLLOW_EVERY,
    DEFAULT_PLUGINS_DIR,
    DEFAULT_RULESFILES_DIR,
    DEFAULT_STATE_DIR,
    STARTUP_BEHAVIORS,
    ArtifactConfig,
    BasicAuth,
    Config,
    FollowConfig,
    IndexRef,
    InstallConfig,
    OAuthClient,
    RegistryConfig,
    default_creds_config,
    default_file_content,
    parse_bool,
    parse_duration,
)
from falcoctl_py.errors import ConfigError

_SEMICOLON_LIST = re.compile(r"^([^;]+)(;[^;]+)*$")
_COMMA_LIST = re.compile(r"^([^,]+)(,[^,]+)*$")


# ---------------------------------------------------------------------------------------------
# reading


def read_config_file(
    path: Path, *, create: bool = False
) -> dict[str, Any]:
    """The file's content with lower-cased keys; a missing file reads as falcoctl's defaults.

    Reading never writes: only a command that changes the file passes ``create`` to have it
    created first (dir 0700), where falcoctl creates it on every command. The file is parsed
    within :mod:`falcoctl_py.bounded`'s limits (size, depth, aliases)."""
    import yaml

    from falcoctl_py.textio import dump_yaml, write_atomic

    if not path.exists():
        if not create:
            defaults: dict[str, Any] = _lower_keys(default_file_content())
            return defaults
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, dump_yaml(default_file_content()).encode(), mode=0o644)
        except OSError as err:
            raise ConfigError(
                f"cannot create the config file: {err.strerror}", path=str(path),
                hint="pass --config with a writable path",
            ) from err
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", path=str(path)) from err
    try:
        data = safe_load_yaml(text, where=str(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"invalid YAML: {problem}", path=where, hint="fix the file or remove it to get defaults"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", path=str(path))
    try:
        lowered: dict[str, Any] = _lower_keys(data)
    except ConfigError as err:
        raise ConfigError(err.message, path=str(path), hint=err.hint) from None
    return lowered


def _lower_keys(value: Any, depth: int = 0) -> Any:
    """``value`` with every mapping key lower-cased; a recursive alias is refused."""
    if depth > 64:
        raise ConfigError("nested more than 64 levels deep (a recursive YAML alias?)",
                          hint="remove the alias that refers to its own parent")
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v, depth + 1) for v in value]
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
    creds = _str(_scalar(data, env, "registry.creds.config"), "registry.creds.config")
    creds_path = Path(os.path.expanduser(creds)) if creds else default_creds_config()

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
        listed = _get(data, "registry.auth.gcp") or []
        if not isinstance(listed, list):
            raise ConfigError("registry.auth.gcp must be a list of registries")
        for value in listed:
            gcp.append(_str(value.get("registry") if isinstance(value, dict) else value,
                            "registry.auth.gcp[]"))
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
    tmp = _str(_scalar(data, env, p + "tmpdir"), "artifact.follow.tmpDir")
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
        else:
            driver[key] = _str_list(driver[key], f"driver.{key}")
    for key in ("version", "name", "hostroot"):
        raw = _env(env, f"driver.{key}")
        driver[key] = raw if raw is not None else _str(driver[key], f"driver.{key}")
    if key_host := env.get("HOST_ROOT"):
        driver["hostroot"] = key_host
    return driver


_SECTIONS = ("registry", "registry.creds", "registry.auth", "artifact", "artifact.install",
             "artifact.follow", "artifact.verify", "driver")


def _check_sections(data: Mapping[str, Any]) -> None:
    """Each section that is present is a mapping (``artifact: 5`` is an error, not ignored)."""
    for dotted in _SECTIONS:
        parent, _, name = dotted.rpartition(".")
        node = _get(data, parent) if parent else data
        value = node.get(name) if isinstance(node, Mapping) else None
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{dotted} must be a mapping, not {type(value).__name__}",
                              hint="see the falcoctl.yaml reference in the README")


def config_from_data(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, path: Path | None = None
) -> Config:
    """Build the model from parsed file content (lower-cased keys) with ``env`` on top."""
    env = os.environ if env is None else env
    try:
        data = _lower_keys(dict(data))
        _check_sections(data)
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
    path: Path, *, create: bool = False, env: Mapping[str, str] | None = None
) -> Config:
    """Read ``falcoctl.yaml`` (defaults when missing; created only with ``create``) with
    ``FALCOCTL_*`` on top."""
    return config_from_data(read_config_file(path, create=create), env=env, path=path)
