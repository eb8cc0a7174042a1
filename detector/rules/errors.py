"""Errors of the rules language: condition syntax errors and rules-file load failures."""

from __future__ import annotations

from falcoctl_py.errors import LocatedError


class ConditionSyntaxError(LocatedError):
    """A condition does not follow libsinsp's filter grammar; knows where, can draw a caret."""

    def __init__(
        self,
        message: str,
        *,
        condition: str,
        idx: int,
        line: int,
        col: int,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, path=path, line=None if path is None else line,
                         column=None if path is None else col, hint=hint)
        self.condition = condition
        self.idx = idx
        self.cond_line = line
        self.cond_col = col

    def caret(self) -> str:
        """The condition line the error is on, and a caret under the column."""
        lines = self.condition.splitlines() or [""]
        text = lines[min(self.cond_line, len(lines)) - 1]
        if len(text) > 200:  # keep huge conditions readable: a window around the column
            start = max(0, self.cond_col - 100)
            return text[start:start + 200] + "\n" + " " * (self.cond_col - 1 - start) + "^"
        return text + "\n" + " " * (self.cond_col - 1) + "^"

    def describe(self) -> str:
        """Message, position and caret, as ``rules parse`` prints them."""
        where = f"line {self.cond_line}, column {self.cond_col}"
        return f"{self.bare_message} ({where})\n{self.caret()}"


class RulesLoadError(LocatedError):
    """A rules file did not load; ``result`` holds every error and warning found."""

    def __init__(self, message: str, *, result: object = None, path: str | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, path=path, line=line, hint=hint)
        self.result = result
