"""Values shared between the checks of generated code. The compiler wraps a costly field read
(:func:`field_token`) and every check (:func:`check_token`) in tokens; :func:`finalize` turns
those used twice or more, across all the rules of one matcher, into locals computed once, lazily
(``_U`` marks a local not computed yet)."""

from __future__ import annotations

import re

_TOKEN = re.compile("\x01([^\x01\x02]*)\x02")
_CHECK_TOKEN = re.compile("\x03([^\x03\x04]*)\x04")
_BODY = re.compile("\x05([0-9]+)\x06")


def field_token(expr: str) -> str:
    """Mark a costly field read: finalize() computes it once if it is read twice or more."""
    return f"\x01{expr}\x02"


def check_token(text: str) -> str:
    """Mark a check: finalize() computes it once if it is made twice or more."""
    return f"\x03{text}\x04"


def finalize(parts: list[str]) -> tuple[list[str], list[str]]:
    """Resolve shared-value tokens: a costly field read twice or more is computed once, lazily.

    Returns the statements to put before the expressions and the expressions themselves.
    """
    # Checks first: a check used twice or more becomes a lazily computed local ``_gN``.
    counts: dict[str, int] = {}
    for part in parts:
        for m in _CHECK_TOKEN.finditer(part):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    shared = [e for e, n in counts.items() if n > 1]
    index = {e: i for i, e in enumerate(shared)}

    def check_repl(m: re.Match[str]) -> str:
        i = index.get(m.group(1))
        return m.group(1) if i is None else f"\x05{i}\x06"

    parts = [_CHECK_TOKEN.sub(check_repl, p) for p in parts]
    bodies = list(shared)
    # Then fields, counting a shared check's body once.
    fcounts: dict[str, int] = {}
    for text in (*parts, *bodies):
        for m in _TOKEN.finditer(text):
            fcounts[m.group(1)] = fcounts.get(m.group(1), 0) + 1
    fnames = {e: f"_c{i}" for i, e in enumerate(e for e, n in fcounts.items() if n > 1)}

    def field_repl(m: re.Match[str]) -> str:
        name = fnames.get(m.group(1))
        return m.group(1) if name is None else \
            f"({name} if {name} is not _U else ({name} := {m.group(1)}))"

    parts = [_TOKEN.sub(field_repl, p) for p in parts]
    bodies = [_TOKEN.sub(field_repl, b) for b in bodies]

    def body_repl(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return f"(_g{i} if _g{i} is not _U else (_g{i} := {bodies[i]}))"

    parts = [_BODY.sub(body_repl, p) for p in parts]
    lines = [" = ".join(names) + " = _U" for names in
             ([f"_g{i}" for i in range(len(bodies))], list(fnames.values())) if names]
    return lines, parts


class ConstPool:
    """Names for the constants of generated code; equal constants share one name."""

    # So equal checks of different rules generate the same text (:func:`finalize` computes
    # them once).

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.env: dict[str, object] = {}
        self.names: dict[tuple[str, object], str] = {}

    def add(self, value: object) -> str:
        try:
            key: tuple[str, object] | None = (type(value).__name__, value)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self.names:
            return self.names[key]
        name = f"_k{self.prefix}{len(self.env)}"
        self.env[name] = value
        if key is not None:
            self.names[key] = name
        return name
