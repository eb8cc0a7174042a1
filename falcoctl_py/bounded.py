"""Bounded parsing of untrusted YAML and JSON: size, nesting depth, aliases and numbers.

Every parser of text that comes from outside (indexes, rules files, config files, registry JSON)
goes through here, so that a small hostile input cannot crash the process or cost minutes and
gigabytes:

- the text's size is checked first;
- YAML is scanned token by token (libyaml's scanner keeps explicit stacks, so a deep input is
  safe to scan) and refused past ``max_depth`` nested collections or ``max_aliases`` aliases
  before any recursive composer sees it; the composed node graph is then measured with aliases
  expanded (a "billion laughs" input is a few hundred bytes) and refused past ``max_nodes``;
- JSON nesting is counted outside strings before :func:`json.loads` recurses, and numbers past
  Python's digit limit become a clear error instead of a ``ValueError``.

Errors are :class:`InputLimitError` (too big, too deep) or the caller's own parse errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from falcoctl_py.errors import FalcoctlPyError

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_OPEN_TOKENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE_TOKENS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKETS = re.compile(rb"[\[\]{}]")


class InputLimitError(FalcoctlPyError):
    """An untrusted input is larger, deeper or more expanded than a limit allows."""

    def __init__(self, message: str, *, where: str, hint: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.where = where


@dataclass(frozen=True, slots=True)
class Limits:
    """How much an input may take: bytes, nested collections, aliases, expanded nodes."""

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64
    max_aliases: int = 1024
    max_nodes: int = 1_000_000


DEFAULT_LIMITS = Limits()


def is_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits (``str.isdigit`` also takes "²", which
    ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def check_size(data: str | bytes, *, where: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse ``data`` when it is longer than ``limits.max_bytes``."""
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > limits.max_bytes:
        raise InputLimitError(
            f"input of {size} bytes is over the limit of {limits.max_bytes} bytes", where=where
        )


def check_yaml(text: str | bytes, *, where: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse YAML ``text`` that is too large, too deeply nested or has too many aliases.

    Only scans: nothing is composed, so this is safe on any input. Syntax errors are left to the
    loader that runs next (it reports them with its own messages).
    """
    check_size(text, where=where, limits=limits)
    depth = aliases = 0
    try:
        for token in yaml.scan(text, Loader=_SafeLoader):
            if isinstance(token, _OPEN_TOKENS):
                depth += 1
                if depth > limits.max_depth:
                    line = token.start_mark.line + 1 if token.start_mark else 0
                    raise InputLimitError(
                        f"YAML nested more than {limits.max_depth} levels deep (line {line})",
                        where=where,
                    )
            elif isinstance(token, _CLOSE_TOKENS):
                depth -= 1
            elif isinstance(token, yaml.AliasToken):
                aliases += 1
                if aliases > limits.max_aliases:
                    raise InputLimitError(
                        f"YAML has more than {limits.max_aliases} aliases", where=where
                    )
    except yaml.YAMLError:
        return  # a syntax error: the loader reports it with its own message


def check_expansion(node: yaml.Node | None, *, where: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a composed YAML graph whose size, aliases expanded, is over ``limits.max_nodes``."""
    if node is None:
        return
    sizes: dict[int, int] = {}
    # Iterative post-order walk; an alias is the same node object reached twice, so its
    # expanded size is counted again each time (that is the cost a consumer would pay).
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if key in sizes and not done:
            continue
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        if not done:
            sizes[key] = -1  # in progress: a recursive alias counts as one node
            stack.append((current, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        total = 1 + sum(max(sizes.get(id(child), 1), 1) for child in children)
        if total > limits.max_nodes:
            raise InputLimitError(
                f"YAML expands to more than {limits.max_nodes} nodes (aliases expanded)",
                where=where,
                hint="remove the anchors and aliases that repeat large parts of the document",
            )
        sizes[key] = total


def safe_load_yaml(text: str | bytes, *, where: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """:func:`yaml.safe_load` of one document, within ``limits``; raises ``yaml.YAMLError``."""
    check_yaml(text, where=where, limits=limits)
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        check_expansion(node, where=where, limits=limits)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def loads_json(data: str | bytes, *, where: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """:func:`json.loads` within ``limits``; syntax errors raise ``json.JSONDecodeError``."""
    check_size(data, where=where, limits=limits)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    depth = 0
    for match in _JSON_BRACKETS.finditer(_JSON_STRING.sub(b"", raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limits.max_depth:
                raise InputLimitError(
                    f"JSON nested more than {limits.max_depth} levels deep", where=where
                )
        else:
            depth -= 1
    try:
        return json.loads(data)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise InputLimitError("JSON nested too deeply", where=where) from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        # int() refuses numbers past sys.get_int_max_str_digits(): a number too large to read.
        raise InputLimitError(f"JSON number too large ({exc})", where=where) from None
