"""The syntax tree of a Falco condition (libsinsp's filter grammar) and its canonical string form.

Every node is a frozen, slotted dataclass. ``pos`` records where the node starts in the
condition text (0-based offset, 1-based line and column); it is excluded from equality, so two
trees compare equal when they have the same shape whatever their positions.

Node kinds (libsinsp ``filter/ast.h`` names in brackets):

* :class:`And`, :class:`Or` [and_expr, or_expr]: n-ary boolean nodes; a chain ``a and b and c``
  is one node; parentheses are not flattened.
* :class:`Not` [not_expr]: negation of its child.
* :class:`Identifier` [identifier_expr]: a bare word in boolean position: a macro reference.
* :class:`BinaryCheck` [binary_check_expr]: ``left op right``; ``left`` is a :class:`FieldRef`
  or a :class:`Transformer`; ``right`` is a :class:`ValueNode` (one constant), a
  :class:`ListNode` (``(a, b)``), or a :class:`Transformer` (``val(field)`` or ``tolower(...)``:
  a value taken from the event). ``op`` is the operator text, e.g. ``"="``, ``"in"`` or, with a
  modifier (libs 0.25+), ``"startswith oneof"``.
* :class:`UnaryCheck` [unary_check_expr]: ``left exists``.
* :class:`FieldRef` [field_expr]: a field name with its optional ``[arg]`` (``proc.aname[2]``,
  ``evt.arg[0]``); ``evt.arg.flags`` is a plain name.
* :class:`Transformer` [field_transformer_expr]: ``name(args...)`` with an optional ``[arg]``;
  args are fields, transformers, constants or :class:`TransformerList`. ``val(f)`` is a
  transformer named ``val`` around one field.
* :class:`ValueNode` [value_expr]: one constant string, already unescaped.
* :class:`ListNode` [list_expr]: a literal list of constant strings.
* :class:`TransformerList` [transformer_list_expr]: ``(a, b)`` inside transformer args (0.24+).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from detector.rules.lang.escaping import escape_str


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a node starts: 0-based offset, 1-based line and column."""

    idx: int = 0
    line: int = 1
    col: int = 1

    def as_list(self) -> list[int]:
        return [self.idx, self.line, self.col]


NOPOS = Pos()


@dataclass(frozen=True, slots=True)
class And:
    """All children hold (n-ary, evaluated left to right)."""

    children: tuple[Expr, ...]
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child holds (n-ary, evaluated left to right)."""

    children: tuple[Expr, ...]
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not hold."""

    child: Expr
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class Identifier:
    """A bare word in boolean position: a macro name, replaced by the macro's tree at load."""

    name: str
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field, e.g. ``proc.name``, with its optional argument (``proc.aname[2]`` -> arg "2")."""

    name: str
    arg: str | None = None
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class ValueNode:
    """One constant string, as written after unescaping."""

    value: str
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class ListNode:
    """A literal list of constant strings: ``(a, "b c")``."""

    items: tuple[str, ...]
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class TransformerList:
    """A list argument of a transformer (``join(",", (a, b))``, libs 0.24+)."""

    children: tuple[TransformerArg, ...]
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class Transformer:
    """A transformer applied to its args: ``tolower(proc.name)``, ``val(proc.pname)``."""

    name: str
    args: tuple[TransformerArg, ...]
    arg: str | None = None
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class BinaryCheck:
    """``left op right``: compare a field (or transformer) with a value, list or other field."""

    left: FieldRef | Transformer
    op: str
    right: ValueNode | ListNode | FieldRef | Transformer
    pos: Pos = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class UnaryCheck:
    """``left exists``: the field (or transformer) can be extracted from the event."""

    left: FieldRef | Transformer
    op: str = "exists"
    pos: Pos = field(default=NOPOS, compare=False)


Expr: TypeAlias = And | Or | Not | Identifier | BinaryCheck | UnaryCheck
Check: TypeAlias = BinaryCheck | UnaryCheck
TransformerArg: TypeAlias = FieldRef | Transformer | ValueNode | TransformerList
Node: TypeAlias = Expr | FieldRef | Transformer | ValueNode | ListNode | TransformerList

# Operator families, as the parser and the compiler both need them.
NUM_OPERATORS = ("<=", "<", ">=", ">")
STR_OPERATORS = (
    "==", "=", "!=", "glob", "iglob", "contains", "icontains", "bcontains",
    "startswith", "bstartswith", "endswith", "regex",
)
LIST_OPERATORS = ("intersects", "in", "pmatch")
UNARY_OPERATORS = ("exists",)
MODIFIERS = ("oneof", "anyof", "allof")
ALL_OPERATORS = (*NUM_OPERATORS, *STR_OPERATORS, *LIST_OPERATORS, *UNARY_OPERATORS)
TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "len", "join", "concat", "getopt")


def _arg_str(arg: str) -> str:
    return "[" + (escape_str(arg) if arg else '""') + "]"


def as_string(node: Node) -> str:
    """libsinsp's canonical text of a tree (``ast::as_string``), e.g. ``(a or (b and c))``."""
    if isinstance(node, (And, Or)):
        sep = " and " if isinstance(node, And) else " or "
        return "(" + sep.join(as_string(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return "not " + as_string(node.child)
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, BinaryCheck):
        return f"{as_string(node.left)} {node.op} {as_string(node.right)}"
    if isinstance(node, UnaryCheck):
        return f"{as_string(node.left)} {node.op}"
    if isinstance(node, FieldRef):
        return node.name if node.arg is None else node.name + _arg_str(node.arg)
    if isinstance(node, Transformer):
        text = node.name + "(" + ",".join(as_string(a) for a in node.args) + ")"
        return text if node.arg is None else text + _arg_str(node.arg)
    if isinstance(node, TransformerList):
        return "(" + ",".join(as_string(a) for a in node.children) + ")"
    if isinstance(node, ValueNode):
        return escape_str(node.value)
    return "(" + ", ".join(escape_str(v) for v in node.items) + ")"


def to_json(node: Node, *, with_pos: bool = False) -> dict[str, object]:
    """The tree in the JSON shape of the conformance vectors (``ast`` / ``ast_with_pos``)."""
    out: dict[str, object]
    if isinstance(node, (And, Or)):
        out = {"type": "and" if isinstance(node, And) else "or"}
        kids = [to_json(c, with_pos=with_pos) for c in node.children]
        body: dict[str, object] = {"children": kids}
    elif isinstance(node, Not):
        out, body = {"type": "not"}, {"child": to_json(node.child, with_pos=with_pos)}
    elif isinstance(node, Identifier):
        out, body = {"type": "identifier"}, {"identifier": node.name}
    elif isinstance(node, BinaryCheck):
        out = {"type": "binary_check"}
        body = {"op": node.op, "left": to_json(node.left, with_pos=with_pos),
                "right": to_json(node.right, with_pos=with_pos)}
    elif isinstance(node, UnaryCheck):
        out = {"type": "unary_check"}
        body = {"op": node.op, "left": to_json(node.left, with_pos=with_pos)}
    elif isinstance(node, FieldRef):
        out, body = {"type": "field"}, {"field": node.name}
        if node.arg is not None:
            body["arg"] = node.arg
    elif isinstance(node, Transformer):
        out = {"type": "transformer"}
        values = [to_json(a, with_pos=with_pos) for a in node.args]
        body = {"transformer": node.name, "values": values}
        if node.arg is not None:
            body["arg"] = node.arg
    elif isinstance(node, TransformerList):
        out = {"type": "transformer_list"}
        body = {"children": [to_json(a, with_pos=with_pos) for a in node.children]}
    elif isinstance(node, ValueNode):
        out, body = {"type": "value"}, {"value": node.value}
    else:
        out, body = {"type": "list"}, {"values": list(node.items)}
    if with_pos:
        out["pos"] = node.pos.as_list()
    out.update(body)
    return out


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children (pre-order)."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        kids: tuple[Node, ...]
        if isinstance(n, (And, Or)):
            kids = n.children
        elif isinstance(n, Not):
            kids = (n.child,)
        elif isinstance(n, BinaryCheck):
            kids = (n.left, n.right)
        elif isinstance(n, UnaryCheck):
            kids = (n.left,)
        elif isinstance(n, Transformer):
            kids = n.args
        elif isinstance(n, TransformerList):
            kids = n.children
        else:
            kids = ()
        stack.extend(reversed(kids))
    return out
