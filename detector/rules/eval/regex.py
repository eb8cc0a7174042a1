"""The ``regex`` operator as libsinsp runs it: RE2 in POSIX mode, an anchored full match.

libsinsp compiles each ``regex`` constant with ``re2::RE2(value, RE2::POSIX)`` (POSIX syntax,
leftmost-longest; no ``\\d``/``\\w``/``\\b``/``(?i)``; ``.`` does not match a newline) and tests
the whole field value. RE2 runs in time linear in the value, so a pattern like ``(a+)+b`` cannot
backtrack for minutes as Python's ``re`` would.

Matching goes to the binding's compiled ``RE2`` object directly (the public ``re2.compile``
wrapper builds a match object per call, several times slower). Field values are ``str`` decoded
with ``surrogateescape``; as libsinsp does, the input is UTF-8-sanitized first (an invalid byte
becomes U+FFFD, which ``.`` matches).
"""

from __future__ import annotations

from typing import Any

import re2  # the PyPI google-re2 binding (no stubs)

try:  # the binding's compiled class: one C++ call per match
    from re2 import _re2 as _native
except ImportError:  # pragma: no cover - depends on the binding's layout
    _native = None


def _options() -> Any:
    options = re2.Options()
    options.posix_syntax = True
    options.longest_match = True
    options.log_errors = False  # errors are raised (and reported) here, not logged by RE2
    options.never_capture = True
    return options


_OPTIONS = _options()


class RegexError(ValueError):
    """The pattern is not valid RE2 POSIX syntax; the message is RE2's."""


class Regex:
    """A compiled ``regex`` constant: ``fullmatch(value)`` is libsinsp's ``RE2::FullMatch``."""

    __slots__ = ("fullmatch", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        raw = pattern.encode("utf-8", "surrogateescape")
        if _native is not None:
            compiled = _native.RE2(raw, _OPTIONS)
            if not compiled.ok():
                raise RegexError(_text(compiled.error()))
            match, anchor = compiled.Match, _native.RE2.Anchor.ANCHOR_BOTH

            def fullmatch(value: str) -> bool:
                data = _utf8(value)
                return bool(match(anchor, data, 0, len(data))[0][0] >= 0)
        else:  # the public API (slower); tested with _native unset
            try:
                public = re2.compile(raw, _OPTIONS)
            except re2.error as exc:
                raise RegexError(_text(exc.args[0] if exc.args else exc)) from None

            def fullmatch(value: str) -> bool:
                return public.fullmatch(_utf8(value)) is not None
        self.fullmatch = fullmatch

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


def _utf8(value: str) -> bytes:
    """``value`` as valid UTF-8: bytes that were not (surrogate escapes) become U+FFFD."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "replace").encode("utf-8")


def _text(message: object) -> str:
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
