"""``static.<name>`` fields from falco.yaml's ``static_fields``, as Falco has them.

Falco adds libsinsp's static filtercheck (``sinsp_filter_check_static``) to the fields of every
event source when ``static_fields`` is set: each ``static.<name>`` is a string field, readable
in conditions and outputs alike, and flagged as a suggested output field (so ``append_output``
with ``suggested_output: true`` appends ``static_<name>=%static.<name>``). Here a static field
binds to its value as a constant; every other field goes to the source's own provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from detector.rules.fields.registry import (
    EVENT,
    SCALAR,
    BoundField,
    FieldDef,
    FieldError,
    Provider,
)

PREFIX = "static."


class StaticFieldsProvider(Provider):
    """A source's fields plus the ``static.*`` ones (constants)."""

    def __init__(self, inner: Provider, values: Mapping[str, str]) -> None:
        self.inner = inner
        self.values = {PREFIX + k: str(v) for k, v in values.items()}
        self.name = inner.name
        self.prelude = inner.prelude
        self.prelude_order = inner.prelude_order
        self.helpers = inner.helpers
        self.evt_num_positive = inner.evt_num_positive
        self.fold_evttype = inner.fold_evttype

    def locals_used(self, expr: str) -> tuple[str, ...]:
        return self.inner.locals_used(expr)

    def knows(self, name: str) -> bool:
        return name in self.values or self.inner.knows(name)

    def make_extractor(self, expr: str) -> Callable[[Any], Any]:
        return self.inner.make_extractor(expr)

    def names(self) -> list[str]:
        """Every field of the source, the static ones first."""
        inner_names = getattr(self.inner, "names", None)
        return [*self.values, *(inner_names() if callable(inner_names) else [])]

    def bind(self, name: str, arg: str | None, *, pos: object = None) -> BoundField:
        value = self.values.get(name)
        if value is None:
            return self.inner.bind(name, arg, pos=pos)
        if arg is not None:
            raise FieldError(f"filter_check called with nonexistent field {name}[{arg}]: "
                             f"field '{name}' does not take an argument", pos=pos)
        fdef = FieldDef(name, "CHARBUF", frozenset(), "static field (falco.yaml static_fields)")
        return BoundField(fdef, name, None, "CHARBUF", SCALAR, repr(value),
                          make=self.make_extractor)


def with_static_fields(providers: Mapping[str, Provider], sources: Iterable[str],
                       values: Mapping[str, str]) -> dict[str, Provider]:
    """``providers`` with the static fields added to every source (unchanged without any)."""
    out = dict(providers)
    if not values:
        return out
    for source in sources:
        out[source] = StaticFieldsProvider(out.get(source, EVENT), values)
    return out
