"""Evaluate a condition against a plain ``{field: value}`` mapping (``rules eval``).

Fields absent from the mapping are unavailable on the event, so every check on them is false.
Values are JSON: strings, numbers, booleans, ``{"bytes_hex": "..."}`` for byte buffers, and lists
for multi-valued fields (``fd.types``) or for the ancestors of ``proc.aname``-style fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from detector.rules.eval.codegen import CompiledCondition
from detector.rules.eval.plan import Operand
from detector.rules.fields import render
from detector.rules.fields.registry import (
    BYTES_TYPES,
    IP_TYPES,
    LIST,
    NET_TYPES,
    NUMERIC_TYPES,
    SCALAR,
    CompileError,
    MappingProvider,
)
from detector.rules.lang.ast import Expr
from falcoctl_py.bounded import InputLimitError, Limits, loads_json
from falcoctl_py.errors import FalcoctlPyError

# One request line: a condition and its field values (a field list nests two levels).
_REQUEST_LIMITS = Limits(max_bytes=4 * 1024 * 1024, max_depth=16)


@dataclass(frozen=True, slots=True)
class EvalResult:
    """One evaluation: ``ok`` false means the condition (or a value) was rejected."""

    ok: bool
    result: bool | None
    error: str | None

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "result": self.result, "error": self.error}


class FieldValueError(CompileError):
    """A field value in the mapping does not fit the field's type."""


def convert_value(raw: Any, ftype: str, kind: str, *, field: str) -> Any:
    """A JSON value converted to the typed value compiled code expects (None: missing)."""
    if raw is None:
        return None
    if isinstance(raw, list):
        if kind == SCALAR:
            raise FieldValueError(f"field {field} takes one value, got a list",
                              hint="lists are for multi-valued fields and proc.a* ancestors")
        out = [_scalar(x, ftype, field) for x in raw]
        return out or None
    value = _scalar(raw, ftype, field)
    return [value] if kind != SCALAR else value


def _scalar(raw: Any, ftype: str, field: str) -> Any:
    if isinstance(raw, dict):
        if set(raw) != {"bytes_hex"}:
            raise FieldValueError(f"field {field}: unsupported value {json.dumps(raw)}")
        try:
            data = bytes.fromhex(str(raw["bytes_hex"]))
        except ValueError:
            raise FieldValueError(f"field {field}: bytes_hex is not an even run of hex digits",
                                  hint='write bytes as {"bytes_hex": "414243"}') from None
        return data if ftype in BYTES_TYPES else data.decode("utf-8", "surrogateescape")
    if ftype == "BOOL":
        if isinstance(raw, bool):
            return raw
        if raw in ("true", "false"):
            return raw == "true"
        if raw in (0, 1):
            return bool(raw)
        raise FieldValueError(f"field {field} is boolean, got {raw!r}")
    if ftype in NUMERIC_TYPES:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise FieldValueError(f"field {field} is numeric, got {raw!r}")
        try:
            return float(raw) if ftype == "DOUBLE" else int(raw)
        except (ValueError, OverflowError):  # not a number, too many digits, infinite
            shown = raw if len(str(raw)) <= 40 else f"{str(raw)[:40]}..."
            raise FieldValueError(f"field {field} is numeric, got {shown!r}") from None
    if ftype in IP_TYPES or ftype in NET_TYPES:
        ip = render.ip_value(str(raw))
        if ip is None:
            raise FieldValueError(f"field {field} is an IP address, got {raw!r}")
        return ip
    if ftype in BYTES_TYPES:
        return str(raw).encode("utf-8", "surrogateescape")
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def _operands(cc: CompiledCondition) -> Iterator[Operand]:
    for plan in cc.plans.values():
        for opnd in (plan.left, plan.rhs):
            if opnd is not None:
                yield opnd
                yield from opnd.subs


# fd.ip / fd.net / fd.port match either endpoint: given the endpoints, they are derived.
DERIVED = {"fd.ip": ("fd.cip", "fd.sip"), "fd.net": ("fd.cip", "fd.sip"),
           "fd.port": ("fd.cport", "fd.sport")}


def typed_mapping(cc: CompiledCondition, values: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping the compiled condition reads: each used field's value, typed."""
    out: dict[str, Any] = {}
    for opnd in _operands(cc):
        bound = opnd.field
        if bound.text in DERIVED and bound.text not in values:
            ends = [values[k] for k in DERIVED[bound.text] if values.get(k) is not None]
            if ends:
                out[bound.text] = convert_value(ends, bound.type, LIST, field=bound.text)
        elif bound.text in values and bound.text not in out:
            kind = LIST if bound.kind != SCALAR else SCALAR
            out[bound.text] = convert_value(values[bound.text], bound.type, kind,
                                            field=bound.text)
    return out


def compile_for_mapping(condition: str | Expr, provider: MappingProvider | None = None
                        ) -> CompiledCondition:
    """Parse (if text) and compile a condition that reads a field mapping."""
    from detector.rules.lang.parser import parse

    node = parse(condition) if isinstance(condition, str) else condition
    return CompiledCondition(node, provider or MappingProvider())


def eval_condition(*, condition: str, fields: Mapping[str, Any]) -> EvalResult:
    """Evaluate ``condition`` with the given field values; errors become ``ok: false``."""
    try:
        cc = compile_for_mapping(condition)
        return EvalResult(True, bool(cc(typed_mapping(cc, fields))), None)
    except FalcoctlPyError as exc:
        where = ""
        if hasattr(exc, "cond_col"):  # a syntax error: say where in the condition
            where = f" (line {getattr(exc, 'cond_line', 1)}, column {exc.cond_col})"
        return EvalResult(False, None, exc.one_line() + where)
    except RecursionError:
        return EvalResult(False, None, "condition nested too deeply")


def eval_lines(lines: Iterable[str | bytes] | TextIO) -> Iterator[EvalResult]:
    """``rules eval --batch``: one JSON request per line in, one result per line out.

    A bad line (not UTF-8, not JSON, too deep, wrong shape, a value of the wrong type) gives an
    error result naming its line number, and the next lines are still evaluated. Given a text
    stream (stdin), its bytes are read so that a line that is not UTF-8 is one error too.
    """
    source: Iterable[str | bytes] = getattr(lines, "buffer", lines)
    for number, line in enumerate(source, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield EvalResult(False, None, f"line {number}: not UTF-8 text ({exc.reason} at "
                                              f"byte {exc.start})")
                continue
        if not line.strip():
            continue
        res = _eval_request(line)
        yield res if res.ok else EvalResult(False, None, f"line {number}: {res.error}")


def _eval_request(line: str) -> EvalResult:
    """One ``--batch`` line evaluated, or its error."""
    try:
        req = loads_json(line, where="", limits=_REQUEST_LIMITS)
    except json.JSONDecodeError as exc:
        return EvalResult(False, None, f"invalid JSON request: {exc}")
    except InputLimitError as exc:
        return EvalResult(False, None, str(exc))
    if not isinstance(req, dict) or not isinstance(req.get("condition"), str):
        return EvalResult(False, None, 'each line must be {"condition": str, "fields": {...}}')
    flds = req.get("fields") or {}
    if not isinstance(flds, dict):
        return EvalResult(False, None, '"fields" must be an object of field -> value')
    return eval_condition(condition=req["condition"], fields=flds)
