"""falco.yaml: Falco's configuration keys, ``-o key=value`` overrides and an embedded default.

The file is read with PyYAML's safe loader (falco.yaml holds no rules), merged over nothing (a
given file replaces the embedded default whole, as Falco's ``-c`` does), then ``-o`` overrides are
applied in order with Falco's syntax: ``a.b.c=v``, ``list[1]=v``, ``list[]=v`` (append),
``rules[].disable.rule=*`` (append a new map) and ``\\.`` for a dot inside a key. Values are YAML
scalars or flow collections. Unknown keys give warnings; a value of the wrong type fails with the
key's dotted path.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from falcoctl_py.errors import ConfigError

log = logging.getLogger("detector.config")

DEFAULT_PLUGINS_DIR = Path("/usr/share/falco/plugins")
PRIORITIES = (
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
)
ENGINE_KINDS = ("ebpf", "replay", "nodriver")
_ENGINE_ALIASES = {"modern_ebpf": "ebpf", "kmod": "ebpf"}

ANY = object()  # a key whose value is not checked
_Spec = Any  # type | list[_Spec] | dict[str, _Spec] | ANY | Callable check

# Every key the detector knows; Falco keys it does not act on are ANY so they do not warn.
SCHEMA: dict[str, _Spec] = {
    "config_files": ANY,
    "rules_files": [str],
    "rules_file": [str],
    "rules": [dict],
    "load_plugins": [str],
    "plugins": [dict],
    "plugins_hostinfo": bool,
    "priority": str,
    "rule_matching": str,
    "json_output": bool,
    "json_include_output_property": bool,
    "json_include_message_property": bool,
    "json_include_output_fields_property": bool,
    "json_include_tags_property": bool,
    "time_format_iso_8601": bool,
    "buffer_format_base64": bool,
    "buffered_outputs": bool,
    "outputs_queue": {"capacity": int},
    "output_timeout": int,
    "append_output": ANY,
    "static_fields": ANY,
    "stdout_output": {"enabled": bool},
    "syslog_output": {"enabled": bool, "address": str, "facility": int},
    "file_output": {"enabled": bool, "keep_alive": bool, "filename": str},
    "http_output": {
        "enabled": bool, "url": str, "user_agent": str, "insecure": bool, "ca_cert": str,
        "ca_bundle": str, "ca_path": str, "mtls": bool, "client_cert": str, "client_key": str,
        "echo": bool, "compress_uploads": bool, "keep_alive": bool,
        "max_consecutive_timeouts": int, "retries": int, "timeout": float,
    },
    "program_output": {"enabled": bool, "keep_alive": bool, "program": str},
    "grpc_output": ANY,
    "grpc": ANY,
    "webserver": {
        "enabled": bool, "threadiness": int, "listen_port": int, "listen_address": str,
        "k8s_healthz_endpoint": str, "prometheus_metrics_enabled": bool, "ssl_enabled": bool,
        "ssl_certificate": str,
    },
    "watch_config_files": bool,
    "engine": {
        "kind": str,
        "ebpf": ANY, "modern_ebpf": ANY, "kmod": ANY, "gvisor": ANY,
        "replay": {"capture_file": str},
    },
    "base_syscalls": {"custom_set": [str], "repair": bool, "all": bool},
    "syscall_event_drops": {
        "threshold": float, "actions": [str], "rate": float, "max_burst": int,
        "simulate_drops": bool,
    },
    "syscall_event_timeouts": ANY,
    "metrics": {
        "enabled": bool, "interval": str, "output_rule": bool, "output_file": str,
        "rules_counters_enabled": bool, "resource_utilization_enabled": bool,
        "state_counters_enabled": bool, "kernel_event_counters_enabled": bool,
        "kernel_event_counters_per_cpu_enabled": bool, "libbpf_stats_enabled": bool,
        "plugins_metrics_enabled": bool, "kernel_iter_event_counters_enabled": bool,
        "jemalloc_stats_enabled": bool, "convert_memory_to_mb": bool,
        "include_empty_values": bool,
    },
    "artifact": {"follow": dict},
    "falco_libs": ANY,
    "capture": ANY,
    "log_stderr": bool,
    "log_syslog": bool,
    "log_level": str,
    "libs_logger": ANY,
}


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """One entry of ``plugins``: how to load and open a plugin."""

    name: str
    library_path: str
    init_config: str = ""
    open_params: str = ""


@dataclass(frozen=True, slots=True)
class RuleSelector:
    """One ``rules:`` item: enable or disable rules by name wildcard or by tag."""

    action: str  # "enable" | "disable"
    rule: str | None = None
    tag: str | None = None


@dataclass(slots=True)
class FalcoConfig:
    """The configuration the runtime uses, read from falco.yaml plus ``-o`` overrides."""

    raw: dict[str, Any]
    path: Path | None
    warnings: list[str] = field(default_factory=list)

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted path, or ``default``."""
        node: Any = self.raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return default if node is None else node

    @property
    def rules_files(self) -> list[str]:
        if "rules_files" in self.raw:
            return list(self.get("rules_files", []))
        return list(self.get("rules_file", []))

    @property
    def load_plugins(self) -> list[str]:
        return list(self.get("load_plugins", []))

    @property
    def plugins(self) -> list[PluginConfig]:
        return [_plugin_config(i, p) for i, p in enumerate(self.get("plugins", []))]

    @property
    def priority(self) -> str:
        return normalize_priority(str(self.get("priority", "debug")), "priority")

    @property
    def rule_selectors(self) -> list[RuleSelector]:
        return [_selector(i, item) for i, item in enumerate(self.get("rules", []))]

    @property
    def engine_kind(self) -> str:
        kind = str(self.get("engine.kind", "ebpf"))
        return _ENGINE_ALIASES.get(kind, kind)

    def flag(self, dotted: str, default: bool = False) -> bool:
        return bool(self.get(dotted, default))


def normalize_priority(value: str, where: str) -> str:
    """Falco's case-insensitive priority names; ``info`` means informational."""
    low = value.strip().lower()
    if low == "info":
        low = "informational"
    if low not in PRIORITIES:
        raise ConfigError(
            f"{where}: unknown priority {value!r}",
            hint="use one of " + ", ".join(PRIORITIES),
        )
    return low


def _plugin_config(index: int, item: dict[str, Any]) -> PluginConfig:
    where = f"plugins[{index}]"
    name = item.get("name")
    lib = item.get("library_path")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: a plugin needs a name", hint="add `name: <plugin>`")
    if not isinstance(lib, str) or not lib:
        raise ConfigError(f"{where}.library_path: plugin {name!r} needs a library_path",
                          hint="give the .so path, or python:<entry point> for Python plugins")
    init = item.get("init_config", "")
    if isinstance(init, dict | list):
        import json

        init = json.dumps(init)
    elif init is None:
        init = ""
    elif not isinstance(init, str):
        raise ConfigError(f"{where}.init_config: expected a string or a map, got "
                          f"{type(init).__name__}", hint="write init_config as a map or a "
                          "JSON string")
    params = item.get("open_params", "")
    if params is None:
        params = ""
    if isinstance(params, int | float) and not isinstance(params, bool):
        params = str(params)
    if not isinstance(params, str):
        raise ConfigError(f"{where}.open_params: expected a string, got {type(params).__name__}",
                          hint="quote open_params")
    return PluginConfig(name=name, library_path=lib, init_config=init,
                        open_params=params.strip())


def _selector(index: int, item: dict[str, Any]) -> RuleSelector:
    where = f"rules[{index}]"
    if len(item) != 1 or next(iter(item)) not in ("enable", "disable"):
        raise ConfigError(f"{where}: expected `enable:` or `disable:`",
                          hint="write e.g. `- disable: {rule: \"*\"}` or "
                          "`- enable: {tag: network}`")
    action, body = next(iter(item.items()))
    if not isinstance(body, dict) or not ({"rule", "tag"} & set(body)):
        raise ConfigError(f"{where}.{action}: expected a map with `rule` or `tag`",
                          hint=f"e.g. {{{action}: {{rule: NAME}}}} or {{{action}: {{tag: TAG}}}}")
    rule, tag = body.get("rule"), body.get("tag")
    return RuleSelector(action=action, rule=None if rule is None else str(rule),
                        tag=None if tag is None else str(tag))


def _type_name(spec: _Spec) -> str:
    if isinstance(spec, list):
        return f"a list of {_type_name(spec[0])}"
    if isinstance(spec, dict):
        return "a map"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            dict: "a map"}.get(spec, str(spec))


def _check(value: Any, spec: _Spec, path: str, warnings: list[str]) -> None:
    if spec is ANY or value is None:
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a map, got {type(value).__name__}",
                              hint="fix the value's type in falco.yaml or the -o override")
        for key, sub in value.items():
            sub_path = f"{path}.{key}" if path else str(key)
            if key not in spec:
                warnings.append(f"unknown configuration key {sub_path!r} (ignored)")
                continue
            _check(sub, spec[key], sub_path, warnings)
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected {_type_name(spec)}, got {type(value).__name__}",
                              hint="fix the value's type in falco.yaml or the -o override")
        for i, item in enumerate(value):
            _check(item, spec[0], f"{path}[{i}]", warnings)
        return
    ok = (
        isinstance(value, bool) if spec is bool
        else isinstance(value, int | float) and not isinstance(value, bool) if spec is float
        else isinstance(value, int) and not isinstance(value, bool) if spec is int
        else isinstance(value, str | int | float) and not isinstance(value, bool) if spec is str
        else isinstance(value, spec)
    )
    if not ok:
        raise ConfigError(f"{path}: expected {_type_name(spec)}, got {type(value).__name__} "
                          f"({value!r})", hint="fix the value's type in falco.yaml or the -o "
                          "override")


def validate(raw: dict[str, Any]) -> list[str]:
    """Check types against the schema (raises ConfigError); return unknown-key warnings."""
    warnings: list[str] = []
    _check(raw, SCHEMA, "", warnings)
    kind = raw.get("engine", {}).get("kind") if isinstance(raw.get("engine"), dict) else None
    if kind is not None and _ENGINE_ALIASES.get(str(kind), str(kind)) not in ENGINE_KINDS:
        raise ConfigError(f"engine.kind: unknown engine {kind!r}",
                          hint="use ebpf, replay or nodriver")
    rm = raw.get("rule_matching")
    if rm is not None and rm not in ("first", "all"):
        raise ConfigError(f"rule_matching: expected first or all, got {rm!r}",
                          hint="set rule_matching to first (Falco's default) or all")
    if raw.get("priority") is not None:
        normalize_priority(str(raw["priority"]), "priority")
    for i, item in enumerate(raw.get("plugins") or []):
        _plugin_config(i, item)
    for i, item in enumerate(raw.get("rules") or []):
        _selector(i, item)
    return warnings


# ---- -o key=value -------------------------------------------------------------------------

_SEGMENT = re.compile(r"^(?P<key>.*?)(?:\[(?P<index>\d*)\])?$")


def _split_path(key: str) -> list[str]:
    parts, cur, i = [], "", 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key):
            cur += key[i + 1]
            i += 2
            continue
        if ch == ".":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def apply_override(raw: dict[str, Any], option: str) -> None:
    """Apply one ``-o key=value`` to ``raw`` in place, with Falco's dotted-path syntax."""
    if "=" not in option:
        raise ConfigError(f"-o {option!r}: expected key=value", hint="e.g. -o json_output=true")
    key, text = option.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = _split_path(key.strip())
    node: Any = raw
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        m = _SEGMENT.match(part)
        assert m is not None
        name, index = m.group("key"), m.group("index")
        if not name:
            raise ConfigError(f"-o {option!r}: empty key in {key!r}",
                              hint="write -o a.b.c=value, with no empty part between dots")
        if not isinstance(node, dict):
            raise ConfigError(f"-o {option!r}: {name!r} is inside a value that is not a map",
                              hint="check the key path against falco.yaml")
        if index is None:
            if last:
                node[name] = value
            else:
                if not isinstance(node.get(name), dict):
                    node[name] = {}
                node = node[name]
            continue
        seq = node.get(name)
        if not isinstance(seq, list):
            seq = node[name] = []
        if index == "":
            seq.append(value if last else {})
            node = seq[-1]
        else:
            pos = int(index)
            while len(seq) <= pos:
                seq.append(None if last else {})
            if last:
                seq[pos] = value
            else:
                if not isinstance(seq[pos], dict):
                    seq[pos] = {}
                node = seq[pos]


def data_dir() -> Path:
    """The folder of the embedded default falco.yaml and the default rules."""
    return Path(str(importlib.resources.files("detector") / "data"))


def default_text() -> str:
    """The embedded default falco.yaml."""
    return (data_dir() / "falco.yaml").read_text("utf-8")


def load_config(
    *,
    path: Path | None = None,
    overrides: list[str] | None = None,
    rules_files: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> FalcoConfig:
    """Read falco.yaml (or the embedded default), apply ``-o`` overrides and ``-r`` files."""
    if path is None:
        text, where = default_text(), "<embedded falco.yaml>"
    else:
        try:
            text, where = path.read_text("utf-8"), str(path)
        except OSError as err:
            raise ConfigError(f"cannot read the configuration: {err.strerror}", path=str(path),
                              hint="give an existing falco.yaml with -c") from err
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", path=where,
                          hint="fix the YAML syntax at the position shown") from err
    if not isinstance(raw, dict):
        raise ConfigError("expected a map of keys at the top", path=where,
                          hint="falco.yaml holds keys such as rules_files: and json_output:")
    for option in overrides or []:
        apply_override(raw, option)
    if rules_files:
        raw.pop("rules_file", None)
        raw["rules_files"] = list(rules_files)
    try:
        warnings = validate(raw)
    except ConfigError as err:
        raise ConfigError(err.message, path=where, hint=err.hint) from err
    for text_ in warnings:
        (warn or log.warning)(f"{where}: {text_}")
    return FalcoConfig(raw=raw, path=path, warnings=warnings)


def expand_rules_paths(entries: list[str], *, base: Path | None = None) -> list[Path]:
    """Rules files in load order: files as listed, directories' .yaml/.yml files sorted."""
    out: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if not p.is_absolute() and base is not None:
            p = base / p
        if p.is_dir():
            out.extend(sorted(c for c in p.iterdir()
                              if c.suffix in (".yaml", ".yml") and c.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise ConfigError(f"rules file or directory {str(p)!r} does not exist",
                              hint="fix rules_files in falco.yaml, or give files with -r")
    return out
