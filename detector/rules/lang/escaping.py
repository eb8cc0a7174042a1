"""libsinsp's string escaping for condition constants (``filter/escaping.cpp``).

``escape_str`` gives the canonical spelling of a constant (quoted only when it must be);
``unescape_str`` decodes a quoted token as the condition parser reads it.

Strings here may carry raw bytes that are not UTF-8 (``\\xff``): they are kept as lone
surrogates (``surrogateescape``), so ``s.encode("utf-8", "surrogateescape")`` gives the bytes.
"""

from __future__ import annotations

_NEEDS_QUOTES = frozenset("\b\f\n\r\t =\\\"'\0")
_ESCAPES = {
    "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"',
}
_UNESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "\\": "\\", "/": "/"}
_HEX = frozenset("0123456789abcdefABCDEF")


class EscapeError(ValueError):
    """A quoted string holds an escape sequence libsinsp does not accept."""


def escape_str(value: str) -> str:
    """The constant as the canonical form writes it: double-quoted iff it must be."""
    if not any(c in _NEEDS_QUOTES for c in value):
        return value
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


def unescape_str(token: str) -> str:
    """Decode a quoted token (delimiters included), as libsinsp's ``unescape_str``.

    Works on one character per byte (the parser's latin-1 view); raises :class:`EscapeError`.
    """
    if len(token) < 2 or token[0] not in "'\"":
        return token
    delim = token[0]
    body = token[1:-1] if token[-1] == delim else token[1:]
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise EscapeError("unterminated string escape sequence")
        e = body[i + 1]
        i += 2
        if e in _UNESCAPES:
            out.append(_UNESCAPES[e])
        elif e == '"':
            if delim != '"':
                raise EscapeError("invalid \\\" escape in '-quoted string")
            out.append('"')
        elif e == "'":
            if delim != "'":
                raise EscapeError("invalid \\' escape in \"-quoted string")
            out.append("'")
        elif e == " ":
            out.append("\\")  # legacy quirk: backslash-space is one backslash
        elif e == "x":
            digits = body[i:i + 2]
            if len(digits) < 2:
                if all(d in _HEX for d in digits):
                    raise EscapeError("truncated hex char escape sequence")
                raise EscapeError("invalid hex char escape sequence")
            if not all(d in _HEX for d in digits):
                raise EscapeError("invalid hex char escape sequence")
            out.append(chr(int(digits, 16)))
            i += 2
        else:
            raise EscapeError(f"unsupported string escape sequence: \\{e}")
    return "".join(out)


def from_bytes_view(text: str) -> str:
    """Turn the parser's one-char-per-byte view back into a normal string."""
    if text.isascii():
        return text
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


def to_bytes_view(text: str) -> str:
    """One character per UTF-8 byte, so offsets count bytes as libsinsp's do."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")
