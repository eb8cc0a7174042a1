"""The Python of n-ary ``and``/``or`` in generated code: constant parts folded, and the order of
a rule's top-level ``and`` chain (see ``codegen._Gen.top``)."""

from __future__ import annotations

import re

_COSTLY = re.compile(r"_h_|any\(|join\(|sum\(|rfind\(|_k\w+\(|\bnot\b|\bor\b")
# Helpers that format text on every call (measured: rendering ``evt.arg.flags`` of an open as
# ``O_RDONLY|O_CLOEXEC`` costs about as much as the rest of a rule), counted as this many more.
_RENDERING = re.compile(r"_h_argstr\(|_h_argidx\(|_h_caps\(")
RENDER_COST = 4


def cost(text: str) -> tuple[bool, int]:
    """Where generated ``text`` goes in an ``and`` chain: the positive checks (they are what
    selects) before the exceptions (``not ...``, which mostly hold), each kind cheapest first
    (helper calls, scans, regexes and nested boolean operators cost, text rendering most;
    attribute compares don't).
    """
    n = len(_COSTLY.findall(text)) + RENDER_COST * len(_RENDERING.findall(text))
    return text.startswith("(not "), n


def fold(parts: list[str], op: str, absorbing: str, neutral: str) -> str:
    """Join the Python of an n-ary and/or, folding its constant parts."""
    if absorbing in parts:
        return absorbing
    parts = [p for p in parts if p != neutral]
    return neutral if not parts else parts[0] if len(parts) == 1 else \
        "(" + f" {op} ".join(parts) + ")"
