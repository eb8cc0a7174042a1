"""Falco's fields: the registry (names, types, flags), name lookup, and binding to extractors.

A condition's :class:`~detector.rules.lang.ast.FieldRef` is bound with :func:`bind` to a
:class:`BoundField`: the field's definition, its effective type, how multiple values match, and
the Python expression that reads it. Two providers exist: :data:`EVENT` reads
:class:`detector.events.Event` objects (:mod:`~detector.rules.fields.extract`),
:class:`MappingProvider` reads a plain ``{field: value}`` dict (``rules eval``, conformance
fixtures).

Lookup follows libsinsp: exact name, else the longest known name that is a prefix followed by
``.`` (``evt.arg.flags``, ``container.label.app``); ``[arg]`` is given separately by the parser.
Missing values are None, and every check on them is false.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.rules.fields import extract as _exprs
from detector.rules.fields import helpers as _helpers
from detector.rules.fields.eventtable import PARAM_TYPES
from detector.rules.fields.table import FIELD_TABLE
from falcoctl_py.bounded import is_digits
from falcoctl_py.errors import LocatedError

NUMERIC_TYPES = frozenset({
    "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "ERRNO", "FD",
    "PID", "PORT", "FLAGS8", "FLAGS16", "FLAGS32", "ENUMFLAGS8", "ENUMFLAGS16", "ENUMFLAGS32",
    "MODE", "RELTIME", "ABSTIME", "DOUBLE", "UID", "GID", "SYSCALLID", "SIGTYPE", "FD32",
    "PID32", "SIGSET", "L4PROTO",
})
STRING_TYPES = frozenset({"CHARBUF", "FSPATH", "FSRELPATH"})
BYTES_TYPES = frozenset({"BYTEBUF"})
IP_TYPES = frozenset({"IPADDR", "IPV4ADDR", "IPV6ADDR"})
NET_TYPES = frozenset({"IPNET", "IPV4NET", "IPV6NET"})
INT_BITS: dict[str, tuple[int, bool]] = {
    "INT8": (8, True), "INT16": (16, True), "INT32": (32, True), "INT64": (64, True),
    "UINT8": (8, False), "UINT16": (16, False), "UINT32": (32, False), "UINT64": (64, False),
    "ERRNO": (64, True), "FD": (64, True), "PID": (64, True), "PORT": (16, False),
    "RELTIME": (64, False), "ABSTIME": (64, False), "UID": (32, False), "GID": (32, False),
    "FD32": (32, True), "PID32": (32, True), "FLAGS8": (8, False), "FLAGS16": (16, False),
    "FLAGS32": (32, False), "MODE": (32, False), "L4PROTO": (8, False),
}
# Argument forms written with a dot: ``evt.arg.flags``, ``container.label.app``.
DOT_ARG_FIELDS = frozenset({
    "evt.arg", "evt.rawarg", "evt.type.is", "thread.cgroup", "container.label", "k8s.pod.label",
    "k8s.rc.label", "k8s.svc.label", "k8s.ns.label", "k8s.rs.label", "k8s.deployment.label",
})


class CompileError(LocatedError):
    """A condition parsed but cannot be compiled (operator/type, value, transformer)."""

    def __init__(self, message: str, *, pos: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.pos = pos


class FieldError(CompileError):
    """A field does not exist, or is used in a way its definition does not allow."""


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field of the table: name, ppm type (without ``PT_``), ``EPF_*`` flags, summary."""

    name: str
    type: str
    flags: frozenset[str]
    desc: str = ""

    def has(self, flag: str) -> bool:
        return flag in self.flags


FIELDS: dict[str, FieldDef] = {
    name: FieldDef(name, ftype, frozenset(flags.split()), desc)
    for name, ftype, flags, desc in FIELD_TABLE
}


def lookup(name: str) -> tuple[FieldDef, str | None] | None:
    """The definition for ``name`` and its dot argument (``evt.arg.flags`` -> ``flags``)."""
    fdef = FIELDS.get(name)
    if fdef is not None:
        return fdef, None
    best = None
    for prefix in DOT_ARG_FIELDS:
        if name.startswith(prefix + ".") and len(name) > len(prefix) + 1 and prefix in FIELDS \
                and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is None:
        return None
    return FIELDS[best], name[len(best) + 1:]


def suggest(name: str) -> str | None:
    """The known field name closest to ``name``, for "did you mean" hints."""
    hits = difflib.get_close_matches(name, list(FIELDS), n=1, cutoff=0.6)
    return hits[0] if hits else None


def is_field_name(text: str) -> bool:
    """Whether ``text`` names a field (with an optional ``[arg]``): used for warnings."""
    m = re.fullmatch(r"([a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+)(\[[^\]]*\])?", text)
    return m is not None and lookup(m.group(1)) is not None


# How the values of a field match: one value, a list (EPF_IS_LIST: ``in`` = all, ``intersects`` =
# any), any-of candidates (proc.aname: every operator matches if one candidate matches), or the
# any-of endpoints of fd.ip/fd.net/fd.port (``!=`` is ``not ==``).
SCALAR, LIST, ANY, ANYIP = "scalar", "list", "any", "anyip"


@dataclass(frozen=True, slots=True)
class BoundField:
    """A field reference resolved for compilation."""

    fdef: FieldDef
    text: str  # the field as written, e.g. ``proc.aname[2]``, ``evt.arg.flags``
    arg: str | None
    type: str
    kind: str
    expr: str  # Python expression over the provider's locals
    no_transformer: bool = False
    no_rhs: bool = False
    make: Callable[[str], Callable[[Any], Any]] = field(
        default=_exprs.make_extractor, compare=False, repr=False)
    _extract: list[Callable[[Any], Any]] = field(default_factory=list, compare=False)
    # A computed value (join/concat/getopt transformers): called with the event, not inlined.
    func: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_list(self) -> bool:
        return self.kind == LIST

    def extract(self, event: Any) -> Any:
        """The field's value for ``event`` (None when missing); lists for multi-valued fields."""
        if self.func is not None:
            return self.func(event)
        if not self._extract:
            self._extract.append(self.make(self.expr))
        return self._extract[0](event)


class Provider:
    """Binds field references to expressions over one kind of event."""

    name = "event"
    prelude: Mapping[str, str] = _exprs.PRELUDE
    prelude_order: tuple[str, ...] = _exprs.PRELUDE_ORDER
    helpers: Mapping[str, object] = _helpers.HELPERS
    # The event interface guarantees ``evt.num >= 1``: ``evt.num = 0`` folds to false.
    evt_num_positive = True
    # ``evt.type`` checks fold to constants when a matcher is built for one event type.
    fold_evttype = True

    def locals_used(self, expr: str) -> tuple[str, ...]:
        return _exprs.locals_used(expr)

    def knows(self, name: str) -> bool:
        """Whether ``name`` (no argument) is a field here: outputs find their tokens by it."""
        return name in FIELDS

    def make_extractor(self, expr: str) -> Callable[[Any], Any]:
        return _exprs.make_extractor(expr)

    def bind(self, name: str, arg: str | None, *, pos: object = None) -> BoundField:
        """Resolve ``name[arg]``; raise :class:`FieldError` for unknown or misused fields."""
        fdef, dot_arg, arg = _resolve(name, arg, pos)
        kind = LIST if fdef.has("IS_LIST") else SCALAR
        if fdef.name in _exprs.ANY_FIELDS and arg is None:
            kind = ANYIP if fdef.name.startswith("fd.") else ANY
        ftype = _effective_type(fdef, arg)
        expr = _exprs.arg_expr(fdef.name, arg) or "None"
        return BoundField(fdef, _text(name, arg if dot_arg is None else None), arg, ftype, kind,
                          expr, fdef.has("NO_TRANSFORMER"), fdef.has("NO_RHS"))


def _text(name: str, arg: str | None) -> str:
    return name if arg is None else f"{name}[{arg}]"


def _resolve(name: str, arg: str | None, pos: object) -> tuple[FieldDef, str | None, str | None]:
    found = lookup(name)
    if found is None:
        near = suggest(name)
        raise FieldError(f"filter_check called with nonexistent field {name}", pos=pos,
                         hint=f"did you mean '{near}'?" if near else
                         "check the name against Falco's list of supported fields")
    fdef, dot_arg = found
    if dot_arg is not None:
        if arg is not None:
            raise FieldError(f"field '{name}' takes its argument only once", pos=pos)
        arg = dot_arg
    if arg is None and fdef.has("ARG_REQUIRED") and fdef.name != "evt.abspath":
        raise FieldError(f"filter_check called with nonexistent field {name}: "
                         "this field requires an argument", pos=pos,
                         hint=f"write it as {name}[ARG]" if fdef.name not in DOT_ARG_FIELDS
                         else f"write it as {name}.NAME")
    if arg is not None and not (fdef.has("ARG_REQUIRED") or fdef.has("ARG_ALLOWED")):
        raise FieldError(f"filter_check called with nonexistent field {name}[{arg}]: "
                         f"field '{name}' does not take an argument", pos=pos)
    if arg is not None and fdef.name in ("proc.aname", "proc.aexe", "proc.aexepath",
                                         "proc.acmdline", "proc.apid", "fd.types") \
            and not is_digits(arg):
        raise FieldError(f"invalid argument '{arg}' for field {fdef.name}: expected a number",
                         pos=pos)
    if fdef.name == "evt.arg" and arg is not None and not is_digits(arg) \
            and arg not in PARAM_TYPES:
        raise FieldError(f"unknown event argument {arg}", pos=pos)
    if fdef.name == "evt.rawarg" and arg not in PARAM_TYPES:
        raise FieldError(f"unknown event argument {arg}", pos=pos)
    return fdef, dot_arg, arg


def _effective_type(fdef: FieldDef, arg: str | None) -> str:
    if fdef.name == "evt.rawarg" and arg is not None:
        ptype = PARAM_TYPES.get(arg, "CHARBUF")
        if ptype in ("FSPATH", "FSRELPATH", "CHARBUF"):
            return "CHARBUF"
        if ptype in NUMERIC_TYPES or ptype in BYTES_TYPES:
            return ptype
        return "CHARBUF"
    if fdef.type == "DYN":
        return "CHARBUF"
    return fdef.type


EVENT = Provider()


class MappingProvider(Provider):
    """Reads fields from a ``{field as written: value}`` dict (values already typed).

    ``types`` declares extra fields (conformance mock fields) or overrides a field's type;
    ``lists`` marks extra fields as multi-valued; ``no_transformer`` forbids transformers.
    """

    name = "mapping"
    prelude: Mapping[str, str] = {}
    prelude_order: tuple[str, ...] = ()
    helpers: Mapping[str, object] = {}
    evt_num_positive = False
    fold_evttype = False

    def __init__(self, *, types: Mapping[str, str] | None = None,
                 lists: frozenset[str] = frozenset(),
                 no_transformer: frozenset[str] = frozenset()) -> None:
        self.types = {k: v.removeprefix("PT_") for k, v in (types or {}).items()}
        self.lists = lists
        self.no_transformer = no_transformer

    def locals_used(self, expr: str) -> tuple[str, ...]:
        return ()

    def make_extractor(self, expr: str) -> Callable[[Any], Any]:
        key = _KEY_RE.fullmatch(expr)
        name = eval(key.group(1)) if key else None
        return lambda e: e.get(name)

    def bind(self, name: str, arg: str | None, *, pos: object = None) -> BoundField:
        text = _text(name, arg)
        if name in self.types or text in self.types:
            ftype = self.types.get(text) or self.types[name]
            flags = set()
            if name in self.lists:
                flags.add("IS_LIST")
            if name in self.no_transformer:
                flags.add("NO_TRANSFORMER")
            fdef = FieldDef(name, ftype, frozenset(flags))
            kind = LIST if name in self.lists else SCALAR
            return BoundField(fdef, text, arg, ftype, kind, f"e.get({text!r})",
                              name in self.no_transformer, False, self.make_extractor)
        bound = super().bind(name, arg, pos=pos)
        return BoundField(bound.fdef, bound.text, bound.arg, bound.type, bound.kind,
                          f"e.get({bound.text!r})", bound.no_transformer, bound.no_rhs,
                          self.make_extractor)


_KEY_RE = re.compile(r"e\.get\(('.*'|\".*\")\)")
