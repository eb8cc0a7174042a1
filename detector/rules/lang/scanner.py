"""The lexing half of the condition parser: a position in the text (index, line, column) and
the steps that match blanks, literals, regexes, quoted strings and operators there."""

from __future__ import annotations

import re

from detector.rules.lang.ast import Pos
from detector.rules.lang.escaping import EscapeError, unescape_str

_BLANKS = frozenset(" \t\b\r\n")


class Fail(Exception):
    """A syntax error at the current position (the parser turns it into its own error)."""


class Scanner:
    """A position in a condition's text and the lexing steps that move it."""

    __slots__ = ("col", "depth", "idx", "last", "line", "max_depth", "n", "text")

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.n = len(text)
        self.idx = 0
        self.line = 1
        self.col = 1
        self.last = ""
        self.depth = 0
        self.max_depth = max_depth

    def pos(self) -> Pos:
        return Pos(self.idx, self.line, self.col)

    def _set(self, p: Pos) -> None:
        self.idx, self.line, self.col = p.idx, p.line, p.col

    def _advance(self, count: int) -> None:
        chunk = self.text[self.idx:self.idx + count]
        nl = chunk.count("\n") + chunk.count("\r")
        if nl:
            last = max(chunk.rfind("\n"), chunk.rfind("\r"))
            self.line += nl
            self.col = count - last
        else:
            self.col += count
        self.idx += count

    def guard(self) -> None:
        self.depth += 1
        if self.depth >= self.max_depth:
            raise Fail(f"exceeded max depth limit of {self.max_depth}")

    def blank(self) -> bool:
        i, text, n = self.idx, self.text, self.n
        while i < n and text[i] in _BLANKS:
            i += 1
        if i == self.idx:
            return False
        self._advance(i - self.idx)
        return True

    def lit(self, s: str) -> bool:
        if self.text.startswith(s, self.idx):
            self.last = s
            self._advance(len(s))
            return True
        return False

    def rgx(self, rx: re.Pattern[str]) -> bool:
        m = rx.match(self.text, self.idx)
        if m is None:
            return False
        self.last = m.group()
        self._advance(len(self.last))
        return True

    def quoted(self) -> bool:
        if self.idx >= self.n or self.text[self.idx] not in "'\"":
            return False
        delim = self.text[self.idx]
        start = self.idx
        i = start + 1
        prev = delim
        text, n = self.text, self.n
        while i < n and text[i] != "\0":
            c = text[i]
            if c == delim and prev != "\\":
                self._advance(i + 1 - start)
                try:
                    self.last = unescape_str(text[start:i + 1])
                except EscapeError as exc:
                    raise Fail(str(exc)) from None
                return True
            prev = c
            i += 1
        return False

    def op_list(self, ops: tuple[str, ...]) -> bool:
        for op in ops:
            if op[-1] != " ":
                if self.lit(op):
                    return True
                continue
            word = op[:-1]
            if self.text.startswith(word, self.idx):
                save = self.pos()
                self.lit(word)
                if self.blank():
                    return True
                self._set(save)
                return False
        return False
