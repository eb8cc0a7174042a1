"""``-o key=value``: Falco's dotted-path overrides of falco.yaml keys.

Syntax: ``a.b.c=v``, ``list[1]=v`` (an index up to the list's length; at the length it
appends), ``list[]=v`` (append), ``rules[].disable.rule=*`` (append a new map) and ``\\.`` for a
dot inside a key. The value is YAML: a scalar or a flow collection (``[a, b]``, ``{k: v}``),
read within the bounds of untrusted input.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from falcoctl_py.bounded import InputLimitError, Limits, safe_load_yaml
from falcoctl_py.errors import ConfigError

_SEGMENT = re.compile(r"^(?P<key>[^\[\]]*)(?:\[(?P<index>\d*)\])?$")
_LIMITS = Limits(max_bytes=1024 * 1024, max_depth=32, max_nodes=100_000)


def split_path(key: str) -> list[str]:
    """``a.b\\.c`` -> ``["a", "b.c"]``."""
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


def _value(option: str, text: str) -> Any:
    if not text.strip():
        return ""
    try:
        return safe_load_yaml(text, where=f"-o {option!r}", limits=_LIMITS)
    except InputLimitError as err:
        raise ConfigError(err.message, hint="give a smaller value") from None
    except (yaml.YAMLError, ValueError):  # ValueError: a number too long to read
        return text


def override_key(option: str) -> str:
    """The key part of ``key=value`` (for ordering: ``config_files`` ones go first)."""
    return option.split("=", 1)[0].strip()


def apply_override(raw: dict[str, Any], option: str) -> None:
    """Apply one ``-o key=value`` to ``raw`` in place."""
    if "=" not in option:
        raise ConfigError(f"-o {option!r}: expected key=value", hint="e.g. -o json_output=true")
    key, text = option.split("=", 1)
    value = _value(option, text)
    parts = split_path(key.strip())
    node: Any = raw
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        m = _SEGMENT.match(part)
        if m is None or not m.group("key"):
            raise ConfigError(f"-o {option!r}: cannot read the key part {part!r}",
                              hint="write -o a.b.c=value or -o list[0]=value")
        name, index = m.group("key"), m.group("index")
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
        pos = len(seq) if index == "" else int(index) if len(index) <= 9 else -1
        if not 0 <= pos <= len(seq):
            raise ConfigError(f"-o {option!r}: index [{index}] is past the end of {name!r} "
                              f"({len(seq)} items)",
                              hint=f"use an index up to {len(seq)}, or {name}[] to append")
        if pos == len(seq):
            seq.append(value if last else {})
        elif last:
            seq[pos] = value
        elif not isinstance(seq[pos], dict):
            seq[pos] = {}
        node = seq[pos]
