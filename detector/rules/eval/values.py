"""Right-hand values and operator building blocks shared by both evaluators.

Constants are parsed once into the field's type (libsinsp ``value_parser``: decimal integers
only, ``true``/``false``, IPs and networks, ports or service names, hex byte strings); the
operator/type matrix is ``filter_compare.cpp: flt_is_comparable``; globs are ``fnmatch(3)``
with flags 0 (or FNM_CASEFOLD for ``iglob``); ``pmatch`` is a component-wise path-prefix match.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any

from detector.rules.fields.eventtable import EVT_TYPE_NAMES
from detector.rules.fields.registry import (
    BYTES_TYPES,
    INT_BITS,
    IP_TYPES,
    NET_TYPES,
    NUMERIC_TYPES,
    STRING_TYPES,
    CompileError,
)

MAX_CONST_LEN = 255
_NUM_RE = re.compile(r"[+-]?[0-9]+")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")

NUM_OPS = frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "in", "intersects", "exists"})
ALLOWED_OPS: dict[str, frozenset[str]] = {
    "numeric": NUM_OPS,
    "bool": frozenset({"=", "==", "!=", "in", "intersects", "exists"}),
    "string": frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains",
                         "startswith", "endswith", "glob", "iglob", "pmatch", "regex", "in",
                         "intersects", "exists"}),
    "bytes": frozenset({"=", "==", "!=", "contains", "bcontains", "startswith", "bstartswith",
                        "endswith", "in", "intersects", "exists"}),
    "ip": frozenset({"=", "==", "!=", "in", "intersects", "exists"}),
    "list": frozenset({"in", "intersects", "exists"}),
}
FAMILY_WORDS = {"numeric": "numeric", "bool": "boolean", "string": "string", "bytes": "buffer",
                "ip": "ip address", "list": "list"}
LIST_OPS = frozenset({"in", "intersects", "pmatch"})
MODIFIER_OPS = frozenset({"=", "==", "!=", "contains", "icontains", "startswith", "endswith",
                          "glob", "iglob", "bstartswith", "bcontains", "regex"})


def family(ftype: str) -> str:
    """The comparison family of a ppm type: numeric, bool, string, bytes or ip."""
    if ftype == "BOOL":
        return "bool"
    if ftype in NUMERIC_TYPES:
        return "numeric"
    if ftype in BYTES_TYPES:
        return "bytes"
    if ftype in IP_TYPES or ftype in NET_TYPES:
        return "ip"
    return "string"


def check_operator(op: str, ftype: str, *, is_list: bool, pos: object = None) -> None:
    """Raise :class:`CompileError` when ``op`` is not allowed for the field's type."""
    base, _, modifier = op.partition(" ")
    fam = "list" if is_list else family(ftype)
    if base not in ALLOWED_OPS[fam]:
        if fam == "list":
            raise CompileError(f"'{base}' operator not supported list filters", pos=pos,
                               hint="list fields take only 'in', 'intersects' and 'exists'")
        raise CompileError(f"filter error: '{base}' operator not supported for "
                           f"{FAMILY_WORDS[fam]} filters", pos=pos,
                           hint=f"a {ftype.lower()} field takes: "
                           + ", ".join(sorted(ALLOWED_OPS[fam])))
    if modifier and (base not in MODIFIER_OPS or fam == "numeric"
                     or (fam == "ip" and base not in ("=", "==", "!="))):
        raise CompileError(f"filter error: modifier '{modifier}' not supported with '{base}' "
                           f"for {FAMILY_WORDS[fam]} filters", pos=pos)


def parse_const(text: str, ftype: str, op: str, *, field: str = "", pos: object = None) -> Any:
    """One constant converted to the field's type (raise :class:`CompileError` if it can't be)."""
    base = op.partition(" ")[0]
    if ftype in BYTES_TYPES:
        if base in ("bcontains", "bstartswith"):
            if not _HEX_RE.fullmatch(text):
                raise CompileError(f"filter error: bcontains and bstartswith operator support "
                                   f"hex strings only: '{text}'", pos=pos,
                                   hint="write the bytes as an even number of hex digits")
            return bytes.fromhex(text)
        return text.encode("utf-8", "surrogateescape")
    if ftype == "BOOL":
        if text == "true":
            return True
        if text == "false":
            return False
        raise CompileError(f"filter error: unrecognized boolean value {text}", pos=pos,
                           hint="use true or false")
    if ftype in NUMERIC_TYPES:
        if ftype == "PORT" and not _NUM_RE.fullmatch(text):
            try:
                return socket.getservbyname(text)
            except OSError:
                raise CompileError(f"{text} is not a valid number or service name",
                                   pos=pos) from None
        if not _NUM_RE.fullmatch(text):
            raise CompileError(f"{text} is not a valid number", pos=pos,
                               hint="numeric fields take decimal integers")
        value = int(text)
        if ftype == "DOUBLE":
            return float(value)
        bits, signed = INT_BITS.get(ftype, (64, True))
        if signed:
            half = 1 << (bits - 1)
            return (value + half) % (1 << bits) - half
        return value % (1 << bits)
    if ftype in IP_TYPES and ftype not in NET_TYPES:
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise CompileError(f"filter error: '{text}' is not a valid IP address",
                               pos=pos) from None
    if ftype in NET_TYPES:
        if "/" not in text:
            raise CompileError(f"filter error: '{text}' is not a valid IP network", pos=pos,
                               hint="write a network with its prefix length, e.g. 10.0.0.0/8")
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise CompileError(f"filter error: '{text}' is not a valid IP network",
                               pos=pos) from None
    if "\x00" in text:
        raise CompileError("filter error: string values can't contain NUL bytes", pos=pos)
    if len(text.encode("utf-8", "surrogateescape")) > MAX_CONST_LEN:
        raise CompileError("filter parameter too long", pos=pos,
                           hint=f"constants are limited to {MAX_CONST_LEN} bytes")
    if field in ("evt.type", "syscall.type") and text not in EVT_TYPE_NAMES:
        raise CompileError(f"unknown event type {text}", pos=pos,
                           hint="see evt.type names in Falco's event table")
    return text


def glob_regex(pattern: str, *, casefold: bool = False) -> re.Pattern[str]:
    """``fnmatch(3)`` semantics (flags 0): ``*`` crosses ``/``, ``[!x]``, backslash escapes.

    Every part between two ``*`` matches a fixed number of characters, so its leftmost place
    is always the right one: each is put in an atomic group after a lazy ``.*?``. The match
    then never backtracks into an earlier part and takes time linear in the value per part
    (``*a*a*a*a*b`` against a long run of ``a`` would otherwise take minutes).
    """
    parts: list[list[str]] = [[]]  # the pattern split at each "*": one regex per character
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            parts.append([])
        elif ch == "?":
            parts[-1].append(".")
        elif ch == "\\":
            if i < n:
                parts[-1].append(re.escape(pattern[i]))
                i += 1
            else:
                parts[-1].append(re.escape("\\"))
        elif ch == "[":
            cls, end = _bracket(pattern, i)
            if cls is None:
                parts[-1].append(re.escape("["))
            else:
                parts[-1].append(cls)
                i = end
        else:
            parts[-1].append(re.escape(ch))
    out = ["".join(parts[0])]
    if len(parts) > 1:
        out.extend(f"(?>.*?{''.join(mid)})" for mid in parts[1:-1] if mid)
        out.append(".*" + "".join(parts[-1]))
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if casefold else 0)
    return re.compile("".join(out), flags)


def _bracket(pat: str, i: int) -> tuple[str | None, int]:
    j = i
    negate = j < len(pat) and pat[j] in "!^"
    if negate:
        j += 1
    items: list[str] = []
    first = True
    while j < len(pat) and (pat[j] != "]" or first):
        first = False
        ch = pat[j]
        if ch == "\\" and j + 1 < len(pat):
            j += 1
            ch = pat[j]
        if j + 2 < len(pat) and pat[j + 1] == "-" and pat[j + 2] != "]":
            hi = pat[j + 2]
            if ch <= hi:  # a reversed range (``[z-a]``) matches no character
                items.append(re.escape(ch) + "-" + re.escape(hi))
            j += 3
            continue
        items.append(re.escape(ch))
        j += 1
    if j >= len(pat):
        return None, i
    if not items:
        return ("." if negate else "(?!)"), j + 1
    return "[" + ("^" if negate else "") + "".join(items) + "]", j + 1


class PathPrefixes:
    """``pmatch``: does some pattern match a leading run of the path's components?"""

    __slots__ = ("globs", "match_all", "plain")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.plain: set[tuple[str, ...]] = set()
        self.globs: list[list[Callable[[str], Any]]] = []
        self.match_all = False
        for pat in patterns:
            comps = tuple(c for c in pat.split("/") if c)
            if not comps:
                self.match_all = True
            elif any(ch in pat for ch in "?*["):
                self.globs.append([glob_regex(c).fullmatch if any(x in c for x in "?*[")
                                   else c.__eq__ for c in comps])
            else:
                self.plain.add(comps)

    def __call__(self, value: str) -> bool:
        comps = [c for c in value.split("/") if c]
        if self.match_all:
            return True
        plain = self.plain
        for k in range(1, len(comps) + 1):
            if tuple(comps[:k]) in plain:
                return True
        for g in self.globs:
            if len(g) <= len(comps) and all(m(comps[i]) for i, m in enumerate(g)):
                return True
        return False


def ascii_lower(s: str) -> str:
    """C-locale ``tolower`` on every character (non-ASCII characters unchanged)."""
    return s.lower() if s.isascii() else s.translate(_LOWER)


def ascii_upper(s: str) -> str:
    """C-locale ``toupper`` on every character."""
    return s.upper() if s.isascii() else s.translate(_UPPER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def _b64(v: Any) -> Any:
    pad = -len(v) % 4  # libsinsp accepts unpadded input
    if pad:
        v = v + (b"=" if isinstance(v, bytes) else "=") * pad
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if isinstance(v, bytes) else raw.decode("utf-8", "surrogateescape")


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v) if v.isascii() else len(v.encode("utf-8", "surrogateescape"))
    return len(v)


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, bytes) else ascii_lower(v)


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, bytes) else ascii_upper(v)


def _basename(v: Any) -> Any:
    return v.rpartition(b"/" if isinstance(v, bytes) else "/")[2]


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "tolower": _lower, "toupper": _upper, "b64": _b64, "basename": _basename, "len": _len,
}


def transformed_type(name: str, ftype: str, *, is_list: bool, field: str,
                     pos: object = None) -> str:
    """The type a transformer yields, or :class:`CompileError` when it does not take ``ftype``."""
    ok = ftype in STRING_TYPES or ftype in BYTES_TYPES or (name == "len" and is_list)
    if name == "len" and (is_list or ftype in STRING_TYPES or ftype in BYTES_TYPES):
        return "UINT64"
    if not ok:
        raise CompileError(f"can't add field transformer: type '{ftype}' is not supported by "
                           f"'{name}' transformer applied on field '{field}'", pos=pos)
    return ftype
