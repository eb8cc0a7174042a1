"""The text rewrites Falco makes before parsing a rule's condition: list names substituted
(``quote_item``, no escaping) and exceptions spliced in as ``and not (...)``, with the checks of
an exception's fields and comparison operators (``validate_exception_info``)."""

from __future__ import annotations

from collections.abc import Mapping

from detector.rules.errors import ConditionSyntaxError
from detector.rules.eval import codegen
from detector.rules.fields.registry import EVENT, Provider
from detector.rules.lang.ast import UnaryCheck
from detector.rules.lang.parser import parse
from detector.rules.load.collector import ExceptionDef
from detector.rules.load.result import LoadFailure
from falcoctl_py.errors import FalcoctlPyError

_BLANKS = " \t\n\r"
_DELIMS = _BLANKS + "(),="
LIST_OPERATORS = ("in", "intersects", "pmatch")
OPERATORS = ("=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains", "bcontains",
             "startswith", "bstartswith", "endswith", "glob", "iglob", "in", "intersects",
             "pmatch", "exists", "regex")
MODIFIABLE = ("=", "==", "!=", "contains", "icontains", "startswith", "endswith", "glob", "iglob",
              "regex", "bcontains", "bstartswith")


def quote_item(item: str) -> str:
    """Falco's ``quote_item``: wrap in double quotes if it has a space (no escaping)."""
    if " " in item and not item.startswith(('"', "'")):
        return f'"{item}"'
    return item


def paren_item(item: str) -> str:
    return item if item.startswith("(") else f"({item})"


def resolve_list(cond: str, name: str, items: list[str]) -> tuple[str, bool]:
    """Substitute a list name in a condition's text, as Falco does; returns (text, used)."""
    used = False
    start = cond.find(name)
    while start != -1:
        end = start + len(name)
        before_ok = start == 0 or cond[start - 1] in _DELIMS
        if before_ok and (end >= len(cond) or cond[end] in _DELIMS):
            while start > 0 and cond[start - 1] in _BLANKS:
                start -= 1
            while end < len(cond) and cond[end] in _BLANKS:
                end += 1
            sub = ", ".join(quote_item(v) for v in items)
            if not sub:
                if start > 0 and cond[start - 1] == ",":
                    start -= 1
                elif end < len(cond) and cond[end] == ",":
                    end += 1
            new = (cond[:start] + " " if start > 0 else "") + sub + " " + cond[end:]
            cond = new
            start += len(sub) + 1
            used = True
        start = cond.find(name, start + 1)
    return cond, used


def exception_condition(cond: str, exceptions: list[ExceptionDef]) -> tuple[str, set[str]]:
    """The rule condition with its exceptions spliced in as text, and the exception fields."""
    out = "(" + cond + ")"
    fields: set[str] = set()
    for ex in exceptions:
        if ex.fields is None or not ex.values:
            continue
        if not ex.fields.is_list:
            comp = ex.comps.item.strip() if ex.comps and not ex.comps.is_list else "in"
            fields.add(ex.fields.item)
            parts = []
            for val in ex.values:
                if val.is_list:
                    raise LoadFailure("LOAD_ERR_VALIDATE",
                                      "Expected values array to contain a list of strings", ex.ctx)
                parts.append(quote_item(val.item))
            out += f" and not ({ex.fields.item} {comp} ({', '.join(parts)}))"
            continue
        names = [f.item for f in ex.fields.items or []]
        fields.update(names)
        comps = ([c.item.strip() for c in ex.comps.items or []] if ex.comps and ex.comps.is_list
                 else ["="] * len(names))
        rows = []
        for row in ex.values:
            values = row.items if row.items is not None else [row]
            if len(values) != len(names):
                raise LoadFailure("LOAD_ERR_VALIDATE", "Fields and values lists must have equal "
                                                       "length", ex.ctx)
            checks = []
            for fname, comp, value in zip(names, comps, values, strict=False):
                if value.items is not None:
                    text = "(" + ", ".join(quote_item(v.item) for v in value.items) + ")"
                elif comp in LIST_OPERATORS or " " in comp:
                    text = paren_item(quote_item(value.item))
                else:
                    text = quote_item(value.item)
                checks.append(f"{fname} {comp} {text}")
            rows.append("(" + " and ".join(checks) + ")")
        if rows:
            out += " and not (" + " or ".join(rows) + ")"
    return out, fields


def check_exception(ex: ExceptionDef, source: str,
                    providers: Mapping[str, Provider] | None = None) -> None:
    """Falco's ``validate_exception_info``: comps and fields must be known (for ``source``)."""
    assert ex.fields is not None
    if ex.fields.is_list:
        names = ex.fields.items or []
        if ex.comps is None:
            from detector.rules.load.collector import Entry

            ex.comps = Entry(items=[Entry("=") for _ in names])
        comps = ex.comps.items if ex.comps.is_list else None
        if comps is None or len(comps) != len(names):
            raise LoadFailure("LOAD_ERR_VALIDATE", "Fields and comps lists must have equal length",
                              ex.ctx)
        for c in comps:
            if not _is_operator(c.item.strip()):
                raise LoadFailure("LOAD_ERR_VALIDATE",
                                  f"'{c.item.strip()}' is not a supported comparison operator",
                                  ex.ctx)
        for f in names:
            if not _is_field(f.item, source, providers):
                raise LoadFailure("LOAD_ERR_VALIDATE", f"'{f.item}' is not a supported filter "
                                                       "field", ex.ctx)
    else:
        if ex.comps is not None and ex.comps.is_list:
            raise LoadFailure("LOAD_ERR_VALIDATE", "Fields and comps must both be strings", ex.ctx)
        comp = ex.comps.item.strip() if ex.comps is not None else "in"
        if comp not in LIST_OPERATORS and not _is_modifier_op(comp):
            raise LoadFailure("LOAD_ERR_VALIDATE", "When fields is a single value, comps must be "
                                                   "one of (in, pmatch, intersects) or a modifier "
                                                   "operator (e.g. startswith oneof)", ex.ctx)
        if not _is_field(ex.fields.item, source, providers):
            raise LoadFailure("LOAD_ERR_VALIDATE", f"'{ex.fields.item}' is not a supported filter "
                                                   "field", ex.ctx)


def _is_modifier_op(text: str) -> bool:
    parts = text.split()
    return len(parts) == 2 and parts[0] in MODIFIABLE and parts[1] in ("oneof", "anyof", "allof")


def _is_operator(text: str) -> bool:
    return text in OPERATORS or _is_modifier_op(text)


def _is_field(text: str, source: str, providers: Mapping[str, Provider] | None) -> bool:
    try:
        tree = parse(f"{text} exists")
    except ConditionSyntaxError:
        return False
    if not isinstance(tree, UnaryCheck):
        return False
    try:
        codegen.compile_condition(tree, (providers or {}).get(source, EVENT))
    except FalcoctlPyError:  # an unknown field
        return False
    return True
