"""Falco output formatting: ``%field`` substitution, the text alert line and the JSON alert.

A format is parsed once (at load) into literal text and tokens; a token is ``%`` + optional
width + a field (the longest known field name, with ``[arg]`` or a ``.name`` argument) or a
transformer expression (``%toupper(proc.name)``). Falco formats with ``*``: a missing value
prints as ``<NA>``. The text line is ``<evt.time>: <Priority> <message>``; the JSON alert is
``{hostname, output, priority, rule, source, tags, time, output_fields}`` with native types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detector.rules.errors import ConditionSyntaxError
from detector.rules.eval import plan as _plan
from detector.rules.eval import reference as _refeval
from detector.rules.fields import registry as _fields
from detector.rules.lang.ast import FieldRef, Transformer, UnaryCheck
from detector.rules.lang.parser import parse
from detector.rules.load.collector import PRIORITIES
from falcoctl_py.errors import LocatedError

NA = "<NA>"
# What Falco appends with ``suggested_output: true`` for the container plugin's fields.
SUGGESTED_CONTAINER_OUTPUT = (
    " container_id=%container.id container_name=%container.name"
    " container_image_repository=%container.image.repository"
    " container_image_tag=%container.image.tag k8s_pod_name=%k8s.pod.name"
    " k8s_ns_name=%k8s.ns.name"
)
_RE_CANDIDATE = re.compile(r"[A-Za-z0-9_.]+")
_RE_TRANSFORMER = re.compile(r"(tolower|toupper|b64|basename|len|join|concat|getopt)\(")
_TIME_FIELDS = frozenset({"evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime",
                          "evt.datetime.s", "evt.rawtime"})


class OutputFormatError(LocatedError):
    """An output format has a token that names no field."""


@dataclass(frozen=True, slots=True)
class Token:
    """One ``%`` token: the text as written (the JSON key), its width, and how to read it."""

    text: str
    width: int
    node: FieldRef | Transformer
    read: Callable[[Any], Any]
    type: str


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A parsed output format: literal strings and tokens, in order."""

    parts: tuple[str | Token, ...]

    @property
    def tokens(self) -> tuple[Token, ...]:
        return tuple(p for p in self.parts if isinstance(p, Token))

    def render(self, event: Any) -> str:
        """The message with every token substituted (``<NA>`` for missing values)."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            text = to_text(p.read(event))
            if p.width:
                text = text[:p.width].ljust(p.width)
            out.append(text)
        return "".join(out)

    def fields(self, event: Any) -> dict[str, Any]:
        """``output_fields``: token text -> native JSON value (None when missing)."""
        out: dict[str, Any] = {}
        for t in self.tokens:
            if isinstance(t.node, FieldRef) and t.node.name in _TIME_FIELDS:
                out[t.text] = getattr(event, "ts", None)
            else:
                out[t.text] = to_json_value(t.read(event))
        return out


def to_text(value: Any) -> str:
    """libsinsp's string rendering of an extracted value."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple, set, frozenset)):
        return "(" + ",".join(to_text(v) for v in value) + ")"
    return str(value)


def to_json_value(value: Any) -> Any:
    """The JSON form of an extracted value: numbers stay numbers, strings strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(v) for v in value]
    return str(value)


def _field_end(text: str, start: int, provider: Any = None) -> tuple[str, int] | None:
    """The longest known field name at ``start`` (plus a ``.name`` argument)."""
    m = _RE_CANDIDATE.match(text, start)
    if m is None or _fields is None:
        return None
    knows = provider.knows if provider is not None else _fields.FIELDS.__contains__
    cand = m.group()
    cuts = [i for i, c in enumerate(cand) if c == "."] + [len(cand)]
    for cut in reversed(cuts):
        name = cand[:cut]
        if knows(name):
            rest = cand[cut:].rstrip(".")
            if rest.startswith(".") and name in _fields.DOT_ARG_FIELDS:
                return name + rest, start + len(name) + len(rest)
            return name, start + cut
    return None


def _close_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _bind(node: FieldRef | Transformer,
          provider: Any = None) -> tuple[Callable[[Any], Any], str]:
    opnd = _plan.operand(node, provider or _fields.EVENT, side="left")
    value_of = _refeval.value_of
    if not opnd.transforms:
        return opnd.field.extract, opnd.type
    return (lambda e: value_of(opnd, e)), opnd.type


def parse_format(fmt: str, provider: Any = None) -> OutputFormat:
    """Parse an output format; raise :class:`OutputFormatError` for an unknown token."""
    # ``provider``: the fields of the rule's source (detector.rules.fields.registry.Provider; the
    # built-in syscall fields when None).
    parts: list[str | Token] = []
    lit: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            lit.append(c)
            i += 1
            continue
        j = i + 1
        while j < n and "0" <= fmt[j] <= "9":
            j += 1
        width = int(fmt[i + 1:j]) if j > i + 1 else 0
        node: FieldRef | Transformer
        if _RE_TRANSFORMER.match(fmt, j):
            end = _close_paren(fmt, j)
            if end < 0:
                raise OutputFormatError(f"invalid formatting token {fmt[j:]}")
            try:
                tree = parse(fmt[j:end] + " exists")
            except ConditionSyntaxError as exc:
                raise OutputFormatError(f"invalid formatting token {fmt[j:end]}: "
                                        f"{exc.bare_message}") from None
            assert isinstance(tree, UnaryCheck)
            node = tree.left
        else:
            found = _field_end(fmt, j, provider)
            if found is None:
                m = _RE_CANDIDATE.match(fmt, j)
                token = m.group() if m else fmt[j:j + 1]
                raise OutputFormatError(f"invalid formatting token {token}")
            name, end = found
            arg = None
            if end < n and fmt[end] == "[":
                close = fmt.find("]", end)
                if close < 0:
                    raise OutputFormatError(f"invalid formatting token {fmt[j:]}")
                arg = fmt[end + 1:close]
                end = close + 1
            node = FieldRef(name, arg)
        try:
            read, ftype = _bind(node, provider)
        except LocatedError as exc:
            raise OutputFormatError(f"invalid formatting token {fmt[j:end]}",
                                    hint=exc.hint or None) from None
        if lit:
            parts.append("".join(lit))
            lit = []
        parts.append(Token(fmt[j:end], width, node, read, ftype))
        i = end
    if lit:
        parts.append("".join(lit))
    return OutputFormat(tuple(parts))


def iso_time(ts: int) -> str:
    """``time`` of the JSON alert: UTC, nanoseconds, ``Z``."""
    secs, nanos = divmod(ts, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


@dataclass(frozen=True, slots=True)
class RuleFormatter:
    """Formats alerts of one rule: the message, the text line, and the JSON fields."""

    message: OutputFormat
    prefix: OutputFormat  # ``%evt.time`` or ``%evt.time.iso8601``

    def line(self, event: Any, priority: int) -> tuple[str, str]:
        """(text line ``time: Priority message``, message)."""
        msg = self.message.render(event)
        return f"{self.prefix.render(event)}: {PRIORITIES[priority]} {msg}", msg

    def output_fields(self, event: Any) -> dict[str, Any]:
        out = self.prefix.fields(event)
        out.update(self.message.fields(event))
        return out


def rule_formatter(output: str, *, iso8601: bool = False, extra: str = "",
                   provider: Any = None) -> RuleFormatter:
    """A rule's formatter; ``extra`` is appended to the output (``append_output``)."""
    prefix = parse_format("%evt.time.iso8601" if iso8601 else "%evt.time", provider)
    return RuleFormatter(parse_format(output + extra, provider), prefix)


def json_alert(*, hostname: str, output: str, priority: int, rule: str, source: str,
               tags: Sequence[str], time_ns: int, output_fields: dict[str, Any],
               message: str | None = None) -> str:
    """Falco's JSON alert line (keys in Falco's order)."""
    doc: dict[str, Any] = {"hostname": hostname, "output": output,
                           "priority": PRIORITIES[priority], "rule": rule, "source": source,
                           "tags": sorted(tags), "time": iso_time(time_ns),
                           "output_fields": output_fields}
    if message is not None:
        doc["message"] = message
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
