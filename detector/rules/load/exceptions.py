"""Reading a rule's ``exceptions:`` entries: names, fields, comparison operators, values rows."""

from __future__ import annotations

from typing import Protocol

from detector.rules.load.collector import Entry, ExceptionDef
from detector.rules.load.decoding import YV, Ctx
from detector.rules.load.result import LoadFailure, Location
from detector.rules.load.yamlload import Mark, YList, YMap, YStr, mark_of


class ItemReader(Protocol):
    """What reading exceptions needs of the file's reader."""

    def loc(self, value: object, item_type: str, name: str = "",
            mark: Mark | None = None) -> Location: ...

    def warn(self, code: str, message: str, ctx: Ctx) -> None: ...

    def string(self, item: YMap, key: str, ctx: Ctx) -> str: ...


def entry(value: object, ctx: Ctx, *, depth: int = 1) -> Entry:
    """A scalar, or a list (of lists, for a values row) of scalars."""
    if isinstance(value, YStr):
        return Entry(item=str(value))
    if isinstance(value, YList) and depth > 0:
        return Entry(items=[entry(v, ctx, depth=depth - 1) for v in value])
    raise LoadFailure(YV, "Expected values array to contain a list of strings", ctx)

def read_exceptions(r: ItemReader, item: YMap, ctx: Ctx, *, append: bool) -> list[ExceptionDef]:
    """A rule's ``exceptions:``, checked as Falco's reader does (``append``: an append)."""
    exs = item.get("exceptions")
    if exs is None or (isinstance(exs, YStr) and exs.is_null):
        return []
    exes_ctx = (*ctx, r.loc(exs, "exceptions", mark=mark_of(exs, mark_of(item))))
    if not isinstance(exs, YList):
        raise LoadFailure(YV, "Rule exceptions must be a sequence", exes_ctx)
    out: list[ExceptionDef] = []
    names: set[str] = set()
    for ex in exs:
        tmp = (*exes_ctx, r.loc(ex, "exception"))
        if not isinstance(ex, YMap):
            raise LoadFailure(YV, "Rule exception must be a mapping", tmp)
        name = r.string(ex, "name", tmp)
        ex_ctx = (*ctx, r.loc(ex, "exception", name))
        if name in names:
            r.warn("LOAD_EXCEPTION_NAME_NOT_UNIQUE",
                      f"Multiple definitions of exception '{name}' in the same rule", ex_ctx)
        names.add(name)
        info = ExceptionDef(name, ex_ctx)
        if "fields" in ex:
            info.fields = entry(ex["fields"], ex_ctx)
        elif not append:
            raise LoadFailure(YV, "Item has no mapping for key 'fields'", ex_ctx)
        if "comps" in ex:
            info.comps = entry(ex["comps"], ex_ctx)
        values = ex.get("values")
        if values is not None and not (isinstance(values, YStr) and values.is_null):
            vals_ctx = (*ex_ctx, r.loc(values, "exception values"))
            if not isinstance(values, YList):
                raise LoadFailure(YV, "Rule exception values must be a sequence", vals_ctx)
            for v in values:
                info.values.append(entry(v, (*vals_ctx, r.loc(v, "exception value")),
                                              depth=2))
        elif append:
            r.warn("LOAD_APPEND_NO_VALUES", "Overriding/appending exception with no values",
                      ex_ctx)
        out.append(info)
    return out
