"""Load-time checking of one comparison: fields bound, transformers typed, constants parsed.

Both evaluators start from a :class:`CheckPlan`, so every load-time error (unknown field,
operator not allowed for the type, bad constant, transformer on the wrong type, right-hand field
rules) is raised here, once, whichever evaluator runs the condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detector.rules.eval.regex import Regex, RegexError
from detector.rules.eval.values import (
    LIST_OPS,
    TRANSFORMS,
    check_operator,
    family,
    parse_const,
    transformed_type,
)
from detector.rules.fields.registry import (
    ANY,
    ANYIP,
    LIST,
    NET_TYPES,
    SCALAR,
    BoundField,
    CompileError,
    FieldDef,
    Provider,
)
from detector.rules.lang.ast import (
    BinaryCheck,
    FieldRef,
    ListNode,
    Transformer,
    TransformerList,
    UnaryCheck,
    ValueNode,
    as_string,
)

SUPPORTED_TRANSFORMERS = frozenset(TRANSFORMS)
MULTI_TRANSFORMERS = frozenset({"join", "concat", "getopt"})


@dataclass(frozen=True, slots=True)
class Operand:
    """A value taken from the event: a field, then transformers applied innermost first."""

    field: BoundField
    transforms: tuple[str, ...]
    type: str
    kind: str
    text: str
    subs: tuple[Operand, ...] = ()  # operands inside join/concat/getopt


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """One comparison ready to evaluate: ``left op consts`` or ``left op rhs``."""

    left: Operand
    op: str  # the base operator (``=`` for ``==``), ``exists`` for unary checks
    modifier: str | None  # oneof / anyof / allof (libs 0.25+)
    consts: tuple[Any, ...]  # parsed right-hand constants (empty for rhs fields / exists)
    rhs: Operand | None
    is_net: bool  # left field is an IP network field: ``=`` means "address in network"


def operand(node: FieldRef | Transformer, provider: Provider, *, side: str) -> Operand:
    """Bind a field or transformer expression (``tolower(proc.name)``)."""
    if isinstance(node, FieldRef):
        bound = provider.bind(node.name, node.arg, pos=node.pos)
        return Operand(bound, (), bound.type, bound.kind, bound.text)
    if node.name == "val":
        if side == "left":
            raise CompileError("filter error: 'val' can only be used on the right-hand side",
                               pos=node.pos)
        if len(node.args) != 1 or not isinstance(node.args[0], FieldRef):
            raise CompileError("filter error: 'val' takes exactly one plain field",
                               pos=node.pos, hint="write val(proc.pname)")
        if node.arg is not None:
            raise CompileError("filter error: transformer 'val' does not support field "
                               "arguments", pos=node.pos)
        return operand(node.args[0], provider, side=side)
    if node.name in MULTI_TRANSFORMERS:
        return _multi(node, provider)
    if node.name not in SUPPORTED_TRANSFORMERS:
        raise CompileError(f"filter error: transformer '{node.name}' is not supported by "
                           "this engine (Falco 0.42 rules language)", pos=node.pos,
                           hint="use tolower, toupper, b64, basename or len")
    if node.arg is not None:
        raise CompileError(f"filter error: transformer '{node.name}' does not support field "
                           "arguments", pos=node.pos)
    if len(node.args) != 1 or not isinstance(node.args[0], (FieldRef, Transformer)):
        raise CompileError(f"filter error: transformer '{node.name}' takes exactly one field",
                           pos=node.pos)
    inner = operand(node.args[0], provider, side=side if node.name != "val" else "right")
    if inner.field.no_transformer:
        raise CompileError(f"field '{inner.field.text}' does not support transformers",
                           pos=node.pos)
    ttype = transformed_type(node.name, inner.type, is_list=inner.kind == LIST,
                             field=inner.text, pos=node.pos)
    kind = SCALAR if node.name == "len" else inner.kind
    return Operand(inner.field, (*inner.transforms, node.name), ttype, kind,
                   f"{node.name}({inner.text})", inner.subs)


def plan_check(node: BinaryCheck | UnaryCheck, provider: Provider) -> CheckPlan:
    """Bind and type-check one comparison; raise :class:`CompileError` on any problem."""
    left = operand(node.left, provider, side="left")
    if isinstance(node, UnaryCheck):
        return CheckPlan(left, "exists", None, (), None, False)
    base, _, modifier = node.op.partition(" ")
    if base == "==":
        base = "="
    check_operator(node.op, left.type, is_list=left.kind == LIST, pos=node.pos)
    is_net = left.type in NET_TYPES and not left.transforms
    right = node.right
    if isinstance(right, (FieldRef, Transformer)):
        return _rhs_plan(node, left, base, modifier or None, provider, is_net)
    items: tuple[str, ...]
    if isinstance(right, ListNode):
        items = right.items
    elif isinstance(right, ValueNode):
        items = (right.value,)
    else:
        raise CompileError(f"filter error: unexpected right-hand side for '{node.op}'",
                           pos=node.pos)
    if modifier and not isinstance(right, ListNode):
        raise CompileError(f"filter error: '{node.op}' needs a list of values", pos=node.pos)
    ctype = left.type
    consts = tuple(parse_const(v, ctype, base, field=left.text if not left.transforms else "",
                               pos=node.pos) for v in items)
    if base == "regex":
        consts = tuple(_regex(v, node.pos) for v in items)
    return CheckPlan(left, base, modifier or None, consts, None, is_net)


def _regex(text: str, pos: object) -> Regex:
    try:
        return Regex(text)
    except RegexError as exc:
        raise CompileError(f"filter error: invalid regular expression '{text}': {exc}",
                           pos=pos) from None


def _rhs_plan(node: BinaryCheck, left: Operand, base: str, modifier: str | None,
              provider: Provider, is_net: bool) -> CheckPlan:
    if base in ("pmatch", "regex") or modifier:
        raise CompileError(f"operator '{base.upper()}' doesn't support right-hand side fields",
                           pos=node.pos)
    if left.field.no_rhs and not left.transforms:
        raise CompileError(f"field '{left.text}' doesn't support right-hand side fields "
                           "(EPF_NO_RHS)", pos=node.pos)
    assert isinstance(node.right, (FieldRef, Transformer))
    rhs = operand(node.right, provider, side="right")
    if rhs.field.no_rhs and not rhs.transforms:
        raise CompileError(f"field '{rhs.text}' can't be used as a right-hand side field",
                           pos=node.pos)
    if left.kind == LIST and base not in LIST_OPS:
        raise CompileError("list field with = not allowed", pos=node.pos)
    if (left.kind == LIST) != (rhs.kind == LIST) and not (base in LIST_OPS and rhs.kind == LIST):
        raise CompileError("rhs field type mismatch (list vs non-list)", pos=node.pos)
    if left.kind != LIST and rhs.kind == LIST and base not in LIST_OPS:
        raise CompileError("rhs field type mismatch (list vs non-list)", pos=node.pos)
    if family(left.type) != family(rhs.type) or (left.kind in (ANY, ANYIP)):
        raise CompileError(f"rhs field type mismatch: '{left.text}' is {left.type.lower()}, "
                           f"'{rhs.text}' is {rhs.type.lower()}", pos=node.pos)
    return CheckPlan(left, base, None, (), rhs, is_net)


# -- join / concat / getopt (libs 0.24+): values computed from several arguments ------------------

Arg = tuple[str, Any]  # ("const", text) | ("operand", Operand) | ("list", [Arg, ...])


def _value(opnd: Operand, event: Any) -> Any:
    value = opnd.field.extract(event)
    for name in opnd.transforms:
        if value is None:
            return None
        value = TRANSFORMS[name](value)
    return value


def _arg(node: Any, provider: Provider, what: str) -> Arg:
    if isinstance(node, ValueNode):
        return ("const", node.value)
    if isinstance(node, TransformerList):
        return ("list", [_arg(c, provider, what) for c in node.children])
    return ("operand", operand(node, provider, side="left"))


def _scalar_arg(arg: Arg, what: str, pos: object) -> None:
    if arg[0] == "list" or (arg[0] == "operand" and arg[1].kind != SCALAR):
        raise CompileError(f"filter error: {what} does not accept a list here", pos=pos)


def _resolve(arg: Arg, event: Any) -> Any:
    kind, val = arg
    if kind == "const":
        return val
    if kind == "list":
        out: list[str] = []
        for item in val:
            v = _resolve(item, event)
            if v is None:
                return None
            out.extend(_text(x) for x in (v if isinstance(v, list) else [v]))
        return out
    v = _value(val, event)
    return v


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _multi(node: Transformer, provider: Provider) -> Operand:
    name, pos = node.name, node.pos
    args = [_arg(a, provider, name) for a in node.args]
    if name == "getopt":
        return _getopt(node, args)
    if node.arg is not None:
        raise CompileError(f"filter error: transformer '{name}' does not support field "
                           "arguments", pos=pos)
    if name == "join":
        if len(args) != 2 or args[1][0] != "list":
            raise CompileError("filter error: join takes a separator and a list: "
                               "join(sep, (a, b))", pos=pos)
        _scalar_arg(args[0], "join's separator", pos)
        sep, items = args

        def fn(event: Any) -> Any:
            s, parts = _resolve(sep, event), _resolve(items, event)
            return None if s is None or parts is None else _text(s).join(parts)
    else:
        if len(args) < 2:
            raise CompileError("filter error: concat takes two values or more", pos=pos)
        for a in args:
            _scalar_arg(a, "concat", pos)

        def fn(event: Any) -> Any:
            parts = [_resolve(a, event) for a in args]
            return None if any(p is None for p in parts) else "".join(_text(p) for p in parts)
    text = as_string(node)
    bound = BoundField(FieldDef(name, "CHARBUF", frozenset()), text, None, "CHARBUF", SCALAR,
                       "None", func=fn)
    return Operand(bound, (), "CHARBUF", SCALAR, text, _subs(args))


def _getopt(node: Transformer, args: list[Arg]) -> Operand:
    pos = node.pos
    if len(args) != 2 or args[1][0] != "const" or not (
            args[0][0] == "list" or (args[0][0] == "operand" and args[0][1].kind == LIST)):
        raise CompileError("filter error: getopt takes a list of arguments and an option "
                           "string: getopt((args...), \"ab:\")", pos=pos)
    if node.arg == "":
        raise CompileError("filter error: getopt's option argument is empty", pos=pos)
    argv, spec = args[0], str(args[1][1])
    opt = node.arg

    def fn(event: Any) -> Any:
        values = _resolve(argv, event)
        if values is None:
            return None
        found, order = parse_getopt([_text(v) for v in values], spec)
        if opt is None:
            return order or None
        return found.get(opt)

    text = as_string(node)
    kind = SCALAR if opt is not None else LIST
    bound = BoundField(FieldDef("getopt", "CHARBUF", frozenset()), text, None, "CHARBUF", kind,
                       "None", func=fn)
    return Operand(bound, (), "CHARBUF", kind, text, _subs(args))


def _subs(args: list[Arg]) -> tuple[Operand, ...]:
    out: list[Operand] = []
    for kind, val in args:
        if kind == "operand":
            out.append(val)
            out.extend(val.subs)
        elif kind == "list":
            out.extend(_subs(val))
    return tuple(out)


def parse_getopt(argv: list[str], spec: str) -> tuple[dict[str, str], list[str]]:
    """POSIX getopt over ``argv``: option -> value (its letter for flags, "?" for unknown)."""
    found: dict[str, str] = {}
    order: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            break
        if a.startswith("--"):  # long options are skipped
            i += 1
            continue
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            ch = a[j]
            at = spec.find(ch) if ch != ":" else -1
            if at < 0:
                found["?"] = "?"
                order.append("?")
                j += 1
                continue
            if spec[at + 1:at + 2] == ":":
                if j + 1 < len(a):
                    val = a[j + 1:]
                elif i + 1 < len(argv):
                    i += 1
                    val = argv[i]
                else:
                    val = ""
                found[ch] = val
                order.append(val)
                break
            found[ch] = ch
            order.append(ch)
            j += 1
        i += 1
    return found, order
