"""Build the typed model from the merged falco.yaml dict: types, ranges and choices checked,
unknown keys (nested ones too) warned once each with their key path.

Scalars are read as Falco's YAML library reads them: a string that spells a number or a
boolean is one (a ``${VAR}`` expanded to ``8765`` is a port), so values from the environment
work wherever a literal would.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

from falcoctl_py.errors import ConfigError

Warn = Callable[[str], None]
_HINT = "fix the value in falco.yaml (or the -o override)"
_MAX_DIGITS = 40  # longer than any number a falco.yaml key takes


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        tp, "a value")


def _bad(path: str, tp: Any, value: Any) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} "
                       f"({shown})", hint=_HINT)


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no",
                                                           "off"):
        return value.strip().lower() in ("true", "yes", "on")
    raise _bad(path, bool, value)


def _number(value: Any, path: str, tp: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(path, tp, value)
    number: int | float
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_DIGITS:
            raise ConfigError(f"{path}: number {text[:20]}... is too long", hint=_HINT)
        try:
            number = int(text) if tp is int else float(text)
        except ValueError:
            raise _bad(path, tp, value) from None
    else:
        number = value
    if tp is int:
        if isinstance(number, float):
            if not number.is_integer():
                raise _bad(path, int, value)
            number = int(number)
        return number
    number = float(number)
    if math.isnan(number) or math.isinf(number):
        raise _bad(path, float, value)
    return number


def _check_range(value: float | int, path: str, meta: Mapping[str, Any]) -> None:
    bounds = meta.get("range")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{path}: {value} is out of range ({bounds[0]} to {bounds[1]})",
                          hint=_HINT)


def _check_choice(value: str, path: str, meta: Mapping[str, Any]) -> str:
    choices = meta.get("choices")
    if choices is None:
        return value
    low = value.strip().lower()
    if path.endswith("priority") and low == "info":
        low = "informational"
    if low not in choices:
        raise ConfigError(f"{path}: unknown value {value!r}", hint="use one of " +
                          ", ".join(choices))
    return low


def convert(tp: Any, value: Any, path: str, meta: Mapping[str, Any], warn: Warn) -> Any:
    """``value`` as type ``tp``, checked; raises ConfigError naming ``path``."""
    if "parse" in meta:
        return meta["parse"](value, path, warn)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp, value, path, warn)
    if tp is bool:
        return _bool(value, path)
    if tp in (int, float):
        number = _number(value, path, tp)
        _check_range(number, path, meta)
        return number
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _bad(path, str, value)
        return _check_choice(str(value), path, meta)
    if typing.get_origin(tp) is tuple:  # tuple[str, ...]: a list (or one scalar, as Falco reads it)
        items = value if isinstance(value, list) else [value]
        return tuple(convert(str, v, f"{path}[{i}]", meta, warn) for i, v in enumerate(items))
    if tp == Mapping[str, str] or tp == (Mapping[str, Any] | None):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a map, got {type(value).__name__}", hint=_HINT)
        if tp != Mapping[str, str]:
            return dict(value)
        return {str(k): convert(str, v, f"{path}.{k}", {}, warn) for k, v in value.items()}
    raise TypeError(f"no converter for {tp!r}")  # a model bug, caught by the tests


def build(cls: type, raw: Any, path: str, warn: Warn) -> Any:
    """An instance of the dataclass ``cls`` from ``raw`` (a map; None gives the defaults)."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'falco.yaml'}: expected a map, got {type(raw).__name__}",
                          hint=_HINT)
    hints = _hints(cls)
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)
              if not f.metadata.get("source")}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        f = fields.get(str(key))
        if f is None:
            warn(f"unknown configuration key '{where}' (ignored)")
            continue
        if value is None:
            continue
        kwargs[f.name] = convert(hints[f.name], value, where, f.metadata, warn)
    return cls(**kwargs)
