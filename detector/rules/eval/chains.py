"""The Python of n-ary ``and``/``or`` in generated code: constant parts folded, and the order of
a rule's top-level ``and`` chain (see ``codegen._Gen.top``)."""

from __future__ import annotations

import re

_COSTLY = re.compile(r"_h_|any\(|join\(|sum\(|rfind\(|_k\w+\(|\bnot\b|\bor\b")


def cost(text: str) -> tuple[bool, int]:
    """Where generated ``text`` goes in an ``and`` chain: the positive checks (they are what
    selects) before the exceptions (``not ...``, which mostly hold), each kind cheapest first
    (helper calls, scans, regexes and nested boolean operators cost; attribute compares don't).
    """
    return text.startswith("(not "), len(_COSTLY.findall(text))


def fold(parts: list[str], op: str, absorbing: str, neutral: str) -> str:
    """Join the Python of an n-ary and/or, folding its constant parts."""
    if absorbing in parts:
        return absorbing
    parts = [p for p in parts if p != neutral]
    return neutral if not parts else parts[0] if len(parts) == 1 else \
        "(" + f" {op} ".join(parts) + ")"
