"""String-preserving YAML loading for rules files, with a position on every value.

PyYAML's default loaders break real Falco rules (``on`` becomes a boolean, ``[=]`` fails,
ports become integers). Here every scalar stays the text it was written as (a :class:`YStr`),
sequences and maps are :class:`YList` / :class:`YMap`, and each carries its YAML mark
(0-based line and column, offset). Plain empty scalars, ``~`` and ``null`` are nulls, as
yaml-cpp reads them (``YStr.is_null``).

The text is bounded before libyaml's recursive composer sees it
(:func:`falcoctl_py.bounded.check_yaml`: size, nesting depth, aliases) and the composed graph
after (:func:`~falcoctl_py.bounded.check_expansion`: nodes with aliases expanded), so a deep or
alias-bombed file is a located load error, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from falcoctl_py.bounded import DEFAULT_LIMITS, InputLimitError, Limits, check_expansion, check_yaml

try:  # libyaml's composer is several times faster when present
    from yaml import CBaseLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import BaseLoader as _Loader  # type: ignore[assignment]

# PyYAML problems and the yaml-cpp messages Falco prints for them.
_MESSAGES = (
    ("mapping values are not allowed", "illegal map value"),
    ("found undefined alias", "the referenced anchor is not defined"),
    ("found unexpected end of stream", "end of map not found"),
    ("found character that cannot start any token", "unknown token"),
)
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_LIMIT_LINE = re.compile(r" ?\(line (\d+)\)")


@dataclass(frozen=True, slots=True)
class Mark:
    """A place in a YAML text: 0-based line and column, and the character offset."""

    line: int = 0
    column: int = 0
    offset: int = 0


class YStr(str):
    """A scalar exactly as written, with its mark and whether YAML reads it as null."""

    mark: Mark
    is_null: bool

    def __new__(cls, value: str, mark: Mark = Mark(), is_null: bool = False) -> YStr:
        obj = super().__new__(cls, value)
        obj.mark = mark
        obj.is_null = is_null
        return obj


class YList(list[object]):
    """A YAML sequence with its mark."""

    mark: Mark = Mark()


class YMap(dict[str, object]):
    """A YAML mapping (keys are plain strings) with its mark and each key's mark."""

    mark: Mark = Mark()
    key_marks: dict[str, Mark]


class YamlError(Exception):
    """The text is not valid YAML (or over a limit); ``mark`` says where, ``hint`` how to fix."""

    def __init__(self, message: str, mark: Mark, hint: str = "") -> None:
        super().__init__(message)
        self.mark = mark
        self.hint = hint


def _mark(m: yaml.Mark | None) -> Mark:
    return Mark(m.line, m.column, m.index) if m is not None else Mark()


def _convert(node: yaml.Node, seen: dict[int, object]) -> object:
    key = id(node)
    if key in seen:  # an alias: the same value again
        return seen[key]
    if isinstance(node, yaml.ScalarNode):
        value = str(node.value)
        null = not node.style and value in _NULLS
        out: object = YStr(value, _mark(node.start_mark), null)
    elif isinstance(node, yaml.SequenceNode):
        seq = YList()
        seq.mark = _mark(node.start_mark)
        seen[key] = seq
        seq.extend(_convert(item, seen) for item in node.value)
        return seq
    else:
        assert isinstance(node, yaml.MappingNode)
        mapping = YMap()
        mapping.mark = _mark(node.start_mark)
        mapping.key_marks = {}
        seen[key] = mapping
        for k, v in node.value:
            name = str(k.value) if isinstance(k, yaml.ScalarNode) else yaml.serialize(k).strip()
            mapping[name] = _convert(v, seen)
            mapping.key_marks[name] = _mark(k.start_mark)
        return mapping
    seen[key] = out
    return out


def _limit_error(exc: InputLimitError) -> YamlError:
    found = _LIMIT_LINE.search(str(exc))  # the line goes into the mark (shown as path:line)
    line = int(found.group(1)) - 1 if found else 0
    hint = exc.hint or "rules files nest a few levels deep and use few aliases; fix the file"
    return YamlError(_LIMIT_LINE.sub("", str(exc)).strip(), Mark(max(line, 0)), hint)


def load_documents(text: str, *, limits: Limits = DEFAULT_LIMITS) -> list[object]:
    """Every YAML document of ``text`` (``None`` for an empty one); raises :class:`YamlError`.

    ``limits`` bound the text's size, nesting depth, aliases and expanded node count.
    """
    try:
        check_yaml(text, where="", limits=limits)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
        for node in nodes:
            check_expansion(node, where="", limits=limits)
    except InputLimitError as exc:
        raise _limit_error(exc) from None
    except yaml.MarkedYAMLError as exc:
        mark = _mark(exc.problem_mark or exc.context_mark)
        problem = exc.problem or exc.context or "invalid YAML"
        for pyyaml, yamlcpp in _MESSAGES:
            if problem.startswith(pyyaml):
                problem = yamlcpp
                break
        msg = f"yaml-cpp: error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
        raise YamlError(msg, mark) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"yaml-cpp: {' '.join(str(exc).split())}", Mark()) from None
    except UnicodeError:
        raise YamlError("yaml-cpp: error at line 1, column 1: invalid UTF-8 text", Mark()) from None
    docs: list[object] = []
    for node in nodes:
        if node is None:
            docs.append(None)
            continue
        value = _convert(node, {})
        docs.append(None if isinstance(value, YStr) and value.is_null else value)
    return docs


def mark_of(value: object, default: Mark | None = None) -> Mark:
    """The mark of a loaded value, or ``default``."""
    return getattr(value, "mark", None) or default or Mark()
