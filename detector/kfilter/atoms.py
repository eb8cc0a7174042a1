"""Conditions over-approximated as small DNFs of atoms a BPF program can evaluate at exit.

An :class:`Atom` is a test on what the program has in hand: the result (``ok``: the syscall
returned >= 0), the open flags (``flags``: ``flags & mask == value``), a command argument
(``cmd``: ``fcntl``'s, compared the same way), the path argument (``path``: equal to /
starting with / ending with one of some strings; used only on absolute, normalised paths,
where the raw argument equals ``fd.name``), the directory-ness of the opened file
(``dir``, state only), a result of 0 (``zero``: a clone's child side, state only) and the
comm (``comm``: ``proc.name`` in a set; not evaluated in the kernel yet). A :data:`Dnf` is
a set of clauses, a clause a set of literals ``(atom, positive)``; :data:`TRUE` keeps
everything, :data:`FALSE` nothing.

:func:`over` maps a condition tree (macros and lists expanded) and an event type to a DNF
that every matching event of that type satisfies: ``and`` is the product (or, past
:data:`MAX_CLAUSES`, the smaller side), ``or`` the union, ``not`` is pushed inwards and
negates only exact atoms; anything else is TRUE. Field facts it relies on (checked by the
tests against the rules evaluator): ``evt.rawres``/``evt.res``/``evt.failed`` and, on opens,
``fd.num`` follow the return value; on opens ``evt.is_open_read`` is ``flags & 3 != 1``,
``evt.is_open_write`` is ``flags & 3 != 0``, ``fd.typechar``/``fd.type`` are ``d``/directory
exactly when ``O_DIRECTORY`` is set, ``evt.arg.flags contains O_X`` is ``flags & O_X``,
``fd.filename`` is what follows the last ``/`` of ``fd.name``.
"""

from __future__ import annotations

from detector.kfilter.dnf import (
    FALSE,
    IS_DIR,
    MAX_CLAUSES,
    OK,
    TRUE,
    Atom,
    Clause,
    Dnf,
    Literal,
    dnf_and,
    dnf_or,
    lit,
)
from detector.kfilter.sockatoms import NAME_FIELDS, SOCK_EVENTS, errno_atom, name_field, sock_atom
from detector.rules.fields.render import OPEN_FLAGS
from detector.rules.lang.ast import And, BinaryCheck, Expr, FieldRef, ListNode, Not, Or, ValueNode

OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})
PATH_FIELDS = frozenset({"fd.name", "evt.arg.name", "evt.arg.path", "fd.nameraw"})
O_DIRECTORY = 0o200000
PATH_MAX_EVAL = 253  # events.h KF_PATH_MAX: longer paths are not evaluated (the trie's key)


def evaluable_path(path: str) -> bool:
    """Whether the kernel evaluates path atoms on this raw path argument: absolute, normalised
    (no ``//``, ``/./``, ``../``, no ``.``/``..``/empty last component) and not cut short;
    then it equals ``fd.name``. Otherwise the event is kept."""
    if not path.startswith("/") or len(path.encode("utf-8", "surrogateescape")) > PATH_MAX_EVAL:
        return False
    if "//" in path or "/./" in path or "../" in path:
        return False
    return path == "/" or not (path.endswith("/") or path.endswith("/.") or path.endswith("/.."))


def _strings(right: object) -> tuple[str, ...] | None:
    if isinstance(right, ValueNode):
        return (right.value,)
    if isinstance(right, ListNode):
        return tuple(sorted(set(right.items)))
    return None


def _int_set_sign(op: str, values: tuple[str, ...]) -> bool | None:
    """For ``x op values``: True if it implies x >= 0, False if x < 0, None if neither."""
    try:
        nums = [int(v, 0) for v in values]
    except ValueError:
        return None
    n = nums[0]
    if op in ("=", "==", "in"):
        return True if all(v >= 0 for v in nums) else False if all(v < 0 for v in nums) else None
    table = {">=": n >= 0, ">": n >= -1}
    if op in table:
        return True if table[op] else None
    below = {"<": n <= 0, "<=": n <= -1}
    if op in below:
        return False if below[op] else None
    return None


_NEG_OP = {">=": "<", ">": "<=", "<": ">=", "<=": ">", "=": "!=", "==": "!=", "!=": "="}


def _result(op: str, values: tuple[str, ...], neg: bool) -> Dnf:
    """``evt.rawres``-like comparisons as a literal of the ``ok`` atom, where they imply one."""
    if neg:
        if op not in _NEG_OP or len(values) != 1:
            return TRUE
        op = _NEG_OP[op]
    sign = None if op == "!=" else _int_set_sign(op, values)
    return TRUE if sign is None else lit(OK, sign)


def _bool(node: BinaryCheck) -> bool | None:
    if node.op not in ("=", "==", "!=") or not isinstance(node.right, ValueNode):
        return None
    v = node.right.value.lower()
    if v not in ("true", "false", "1", "0"):
        return None
    return (v in ("true", "1")) == (node.op != "!=")


def _open_atom(name: str, node: BinaryCheck, strings: tuple[str, ...], neg: bool) -> Dnf | None:
    """Atoms of open events; None when the field is no open-specific one."""
    op = node.op
    if name in PATH_FIELDS:
        if op in ("=", "==", "in"):
            return lit(Atom("path", op="eq", strings=strings), not neg)
        if op == "!=" and len(strings) == 1:
            return lit(Atom("path", op="eq", strings=strings), neg)
        if op == "startswith":
            return lit(Atom("path", op="prefix", strings=strings), not neg)
        if op == "endswith":
            return lit(Atom("path", op="suffix", strings=strings), not neg)
        if op == "contains" and all(not evaluable_path("/x" + t) for t in strings):
            # text no evaluable path holds ("../", "//"): the kernel keeps every path holding it
            return lit(Atom("path", op="contains", strings=strings), not neg)
        if op == "pmatch":  # a path prefix on whole components: over-approximated
            return lit(Atom("path", op="prefix", strings=strings, exact=False), not neg)
        return TRUE
    if name == "fd.directory" and op in ("=", "==", "in"):
        dirs = tuple(sorted({s.rstrip("/") + "/" for s in strings}))
        return lit(Atom("path", op="prefix", strings=dirs, exact=False), not neg)
    if name == "fd.filename" and (op in ("=", "==", "in") or (op == "!=" and len(strings) == 1)):
        return _filename(strings, (op != "!=") != neg)
    if name in ("evt.is_open_read", "evt.is_open_write"):
        want = _bool(node)
        if want is None:
            return TRUE
        atom = Atom("flags", 3, 1 if name == "evt.is_open_read" else 0)
        return lit(atom, want == neg)  # is_open_read = not (flags & 3 == 1)
    if name == "evt.arg.flags" and op == "contains" and len(strings) == 1:
        return _flag_name(strings[0], neg)
    if name in ("fd.typechar", "fd.type") and op in ("=", "==", "!=") and len(strings) == 1:
        d = {"fd.typechar": ("d", "f"), "fd.type": ("directory", "file")}[name]
        if strings[0] not in d:
            return FALSE if (op != "!=") != neg else TRUE
        atom = Atom("flags", O_DIRECTORY, O_DIRECTORY if strings[0] == d[0] else 0)
        return lit(atom, (op != "!=") != neg)
    if name == "fd.num":
        return _result(op, strings, neg)
    return None


def _filename(names: tuple[str, ...], positive: bool) -> Dnf:
    """``fd.filename in names``: on an evaluable path (absolute, no trailing ``/``) the file
    name is the part after the last ``/``, so it is ``x`` exactly when the path ends with
    ``/x``; a name holding ``/`` is no file name. ``""`` (the name of ``/``) is not evaluated."""
    if "" in names:
        return TRUE
    ends = tuple(sorted({"/" + n for n in names if "/" not in n}))
    if not ends:
        return FALSE if positive else TRUE
    return lit(Atom("path", op="suffix", strings=ends), positive)


def _flag_name(text: str, neg: bool) -> Dnf:
    """``evt.arg.flags contains NAME``: one flag bit, when no other flag name contains it."""
    values = dict(OPEN_FLAGS)
    if text not in values or sum(text in n for n, _ in OPEN_FLAGS) != 1:
        return TRUE
    v = values[text]
    if v & (v - 1):  # several bits (O_SYNC, O_TMPFILE): the rendering is not one bit test
        return TRUE
    return lit(Atom("flags", v, v), not neg)


def _atom(node: BinaryCheck, evttype: str, neg: bool) -> Dnf:
    """One comparison (negated when ``neg``) on ``evttype``."""
    left = node.left
    strings = _strings(node.right)
    if not isinstance(left, FieldRef) or strings is None:
        return TRUE
    name, op = left.name, node.op
    if left.arg is not None:
        if name != "evt.arg":
            return TRUE
        name = f"evt.arg.{left.arg}"
    if name == "evt.type" and op in ("=", "==", "in", "!="):
        inside = evttype in strings
        return TRUE if inside == ((op != "!=") != neg) else FALSE
    if name == "proc.name" and op in ("=", "==", "in", "!="):
        positive = (op != "!=") != neg
        return lit(Atom("comm", strings=strings), positive)
    if name == "evt.rawres":
        return _result(op, strings, neg)
    if name == "evt.res" and op in ("=", "==", "!=") and strings == ("SUCCESS",):
        return lit(OK, (op != "!=") != neg)
    if name in NAME_FIELDS:
        return name_field(neg)
    if name == "evt.res":
        got = errno_atom(strings, op, neg)
        return TRUE if got is None else got
    if evttype in SOCK_EVENTS:
        got = sock_atom(name, op, strings, evttype, neg)
        if got is not None:
            return got
    if name == "evt.failed":
        want = _bool(node)
        return TRUE if want is None else lit(OK, want == neg)
    if evttype in OPEN_TYPES:
        got = _open_atom(name, node, strings, neg)
        if got is not None:
            return got
    return TRUE


def over(node: Expr, evttype: str, neg: bool = False) -> Dnf:
    """A DNF every ``evttype`` event satisfying ``node`` (``not node`` if ``neg``) satisfies."""
    if isinstance(node, Not):
        return over(node.child, evttype, not neg)
    if isinstance(node, (And, Or)):
        conj = isinstance(node, And) != neg  # De Morgan under a negation
        out = TRUE if conj else FALSE
        for child in node.children:
            part = over(child, evttype, neg)
            out = dnf_and(out, part) if conj else dnf_or(out, part)
            if conj and out == FALSE:
                break
        return out
    if isinstance(node, BinaryCheck):
        return _atom(node, evttype, neg)
    return TRUE  # exists, identifiers (none after expansion): nothing the kernel can check


def holds(dnf: Dnf, **facts: object) -> bool:
    """Whether an event with these facts (see :meth:`Atom.holds`) satisfies the DNF."""
    return any(all(a.holds(**facts) == p for a, p in c) for c in dnf)  # type: ignore[arg-type]


__all__ = ["FALSE", "IS_DIR", "MAX_CLAUSES", "OK", "TRUE", "Atom", "Clause", "Dnf", "Literal",
           "dnf_and", "dnf_or", "evaluable_path", "holds", "lit", "over"]
