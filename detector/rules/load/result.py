"""Load results as Falco reports them: error and warning codes, locations, the JSON shape."""

from __future__ import annotations

from dataclasses import dataclass, field

# Error codes (falco_load_result.h), with Falco's descriptions.
ERROR_CODES = {
    "LOAD_ERR_FILE_READ": "Could not read file",
    "LOAD_ERR_YAML_PARSE": "Invalid yaml",
    "LOAD_ERR_YAML_VALIDATE": "Error in rules content",
    "LOAD_ERR_COMPILE_CONDITION": "Error in condition",
    "LOAD_ERR_COMPILE_OUTPUT": "Error in output",
    "LOAD_ERR_VALIDATE": "Error validating rule/macro/list/exception objects",
    "LOAD_ERR_EXTENSION": "Error in extension item",
}
WARNING_CODES = {
    "LOAD_UNKNOWN_SOURCE": "Unknown event source",
    "LOAD_UNSAFE_NA_CHECK": "Unsafe <NA> comparison in condition",
    "LOAD_NO_EVTTYPE": "Condition has no event-type restriction",
    "LOAD_UNKNOWN_FILTER": "Unknown field or event-type in condition or output",
    "LOAD_UNUSED_MACRO": "Unused macro",
    "LOAD_UNUSED_LIST": "Unused list",
    "LOAD_UNKNOWN_ITEM": "Unknown rules file item",
    "LOAD_DEPRECATED_ITEM": "Used deprecated item",
    "LOAD_WARNING_EXTENSION": "Warning in extension item",
    "LOAD_APPEND_NO_VALUES": "Overriding/appending with no values",
    "LOAD_EXCEPTION_NAME_NOT_UNIQUE": "Multiple exceptions defined with the same name",
    "LOAD_INVALID_MACRO_NAME": "Invalid macro name",
    "LOAD_INVALID_LIST_NAME": "Invalid list name",
    "LOAD_COMPILE_CONDITION": "Condition has issues",
    "LOAD_UNKNOWN_KEY": "Unknown key",
}

WARNING_APPEND = ("'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') "
                  "under 'override' instead.")
WARNING_ENABLED = ("The standalone 'enabled' key usage is deprecated. The correct approach "
                   "requires also a 'replace' entry under the 'override' key "
                   "(i.e. 'enabled: replace').")


@dataclass(frozen=True, slots=True)
class Location:
    """One level of where a message applies: the item and its place (0-based line/column)."""

    item_type: str
    item_name: str = ""
    path: str = ""
    line: int = 0
    column: int = 0
    offset: int = 0

    def as_json(self) -> dict[str, object]:
        return {"item_type": self.item_type, "item_name": self.item_name,
                "position": {"name": self.path, "line": self.line, "column": self.column,
                             "offset": self.offset}}


@dataclass(frozen=True, slots=True)
class LoadMessage:
    """One error or warning: Falco's code, its message, and the locations (outermost first)."""

    code: str
    message: str
    locations: tuple[Location, ...] = ()
    snippet: str = ""
    hint: str = ""  # ours, not Falco's: how to fix (e.g. the field you probably meant)

    @property
    def where(self) -> str:
        """``path:line`` (1-based) of the innermost location."""
        if not self.locations:
            return ""
        loc = self.locations[-1]
        return f"{loc.path}:{loc.line + 1}" if loc.path else ""

    @property
    def item(self) -> str:
        """``rule 'X'`` for the outermost named item, for messages."""
        for loc in self.locations:
            if loc.item_name:
                return f"{loc.item_type} '{loc.item_name}'"
        return self.locations[0].item_type if self.locations else ""

    def one_line(self) -> str:
        where = self.where
        item = self.item
        text = f"{self.code}: {self.message}"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        if item:
            text = f"{item}: {text}"
        return f"{where}: {text}" if where else text

    def as_json(self) -> dict[str, object]:
        desc = ERROR_CODES.get(self.code) or WARNING_CODES.get(self.code, "")
        return {"code": self.code, "codedesc": desc, "message": self.message,
                "context": {"locations": [loc.as_json() for loc in self.locations],
                            "snippet": self.snippet}}


@dataclass(slots=True)
class LoadResult:
    """The result of loading one rules file, as ``falco -V`` reports it."""

    name: str
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)

    @property
    def successful(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "successful": self.successful, "schema_valid": True,
                "schema_warnings": [],
                "errors": [e.as_json() for e in self.errors],
                "warnings": [w.as_json() for w in self.warnings]}

    def as_text(self) -> str:
        """Falco's human form: the file, Ok or Invalid, then each error and warning."""
        lines = [f"{self.name}: {'Ok' if self.successful else 'Invalid'}"]
        if self.errors:
            lines.append(f"{len(self.errors)} Errors:")
            lines.extend("  " + e.one_line() for e in self.errors)
        if self.warnings:
            lines.append(f"{len(self.warnings)} Warnings:")
            lines.extend("  " + w.one_line() for w in self.warnings)
        return "\n".join(lines)


class LoadFailure(Exception):
    """Internal: an error that stops reading or compiling (Falco's ``rule_load_exception``)."""

    def __init__(self, code: str, message: str, locations: tuple[Location, ...],
                 hint: str = "") -> None:
        super().__init__(message)
        self.msg = LoadMessage(code, message, locations, hint=hint)
