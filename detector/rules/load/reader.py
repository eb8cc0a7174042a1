"""Reading a rules file's YAML into the collector, with yaml-cpp's decoding and Falco's checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from detector.rules.load.collector import (
    Collector,
    ExceptionDef,
    ListDef,
    MacroDef,
    RuleDef,
    RuleUpdate,
    parse_priority,
)
from detector.rules.load.decoding import YV, Ctx, Decoder
from detector.rules.load.exceptions import read_exceptions
from detector.rules.load.result import (
    WARNING_APPEND,
    WARNING_ENABLED,
    LoadFailure,
    LoadMessage,
    Location,
)
from detector.rules.load.yamlload import Mark, YamlError, YList, YMap, YStr, load_documents, mark_of
from detector.rules.versions import ENGINE_VERSION, parse_semver
from falcoctl_py.bounded import is_digits

_RE_LIST_NAME = re.compile(r"[^()\"' \t\n\r\f\v=,]+")
_RE_MACRO_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")

ALLOWED_KEYS = {
    "rule": {"rule", "condition", "output", "desc", "priority", "source", "enabled", "capture",
             "capture_duration", "warn_evttypes", "skip-if-unknown-filter", "tags", "exceptions",
             "override", "append"},
    "macro": {"macro", "condition", "append", "override"},
    "list": {"list", "items", "append", "override"},
    "required_engine_version": {"required_engine_version"},
    "required_plugin_versions": {"required_plugin_versions"},
}
RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
RULE_REPLACEABLE = ("condition", "output", "desc", "tags", "exceptions", "priority", "enabled",
                    "warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration")


@dataclass(slots=True)
class Reader(Decoder):
    """Reads one rules file into a shared :class:`Collector`."""

    collector: Collector
    path: str
    text: str
    known_sources: frozenset[str]
    check_exception: Callable[[ExceptionDef, str], None] | None = None
    collect: bool = False
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)

    # -- contexts and messages ------------------------------------------------------------
    def loc(self, value: object, item_type: str, name: str = "",
            mark: Mark | None = None) -> Location:
        m = mark or mark_of(value)
        return Location(item_type, name, self.path, m.line, m.column, m.offset)

    def warn(self, code: str, message: str, ctx: Ctx) -> None:
        self.warnings.append(LoadMessage(code, message, ctx, self.snippet(ctx)))

    def snippet(self, ctx: Ctx) -> str:
        if not ctx:
            return ""
        line = ctx[-1].line
        lines = self.text.splitlines()[line:line + 8]
        out = []
        for i, text in enumerate(lines):
            if i and text.startswith("- "):
                break
            out.append(text)
        return "\n".join(out)

    def read(self) -> None:
        base = (Location("rules content", "", self.path, 0, 0, 0),)
        try:
            docs = load_documents(self.text)
        except YamlError as exc:
            m = exc.mark
            ctx = (Location("rules content", "", self.path, m.line, m.column, m.offset),)
            self.errors.append(LoadMessage("LOAD_ERR_YAML_PARSE", str(exc), ctx, hint=exc.hint))
            return
        for doc in docs:
            if doc is None:
                continue
            if isinstance(doc, YStr):
                self.errors.append(LoadMessage(YV, "Rules content is not yaml", base))
                return
            if isinstance(doc, YMap):
                self.errors.append(LoadMessage(YV, "Rules content is not yaml array of objects",
                                               base))
                return
            assert isinstance(doc, YList)
            for item in doc:
                if isinstance(item, YStr) and item.is_null:
                    continue
                try:
                    if not isinstance(item, YMap):
                        ctx = (self.loc(item, "rules content item"),)
                        raise LoadFailure(YV, "Unexpected element type. Each element should be "
                                              "a yaml associative array.", ctx)
                    self.read_item(item)
                except LoadFailure as exc:
                    msg = exc.msg
                    self.errors.append(LoadMessage(msg.code, msg.message, msg.locations,
                                                   self.snippet(msg.locations)))
                    if not self.collect:
                        return

    def unknown_keys(self, item: YMap, kind: str, ctx: Ctx) -> None:
        for key in item:
            if key not in ALLOWED_KEYS[kind]:
                self.warn("LOAD_UNKNOWN_KEY", f"Unknown key '{key}'. The key will be ignored.", ctx)

    def read_item(self, item: YMap) -> None:
        if "required_engine_version" in item:
            self.read_engine_version(item)
        elif "required_plugin_versions" in item:
            self.read_plugin_versions(item)
        elif "list" in item:
            self.read_list(item)
        elif "macro" in item:
            self.read_macro(item)
        elif "rule" in item:
            self.read_rule(item)
        else:
            self.warn("LOAD_UNKNOWN_ITEM", "Unknown top level item",
                      (self.loc(item, "rules content item"),))

    def read_engine_version(self, item: YMap) -> None:
        ctx = (self.loc(item, "required_engine_version"),)
        text = self.string(item, "required_engine_version", ctx)
        version = (0, int(text), 0) if is_digits(text.strip()) else parse_semver(text)
        if version is None:
            raise LoadFailure(YV, f"Unable to parse engine version '{text}' as a semver string. "
                                  'Expected "x.y.z" semver format.', ctx)
        self.unknown_keys(item, "required_engine_version", ctx)
        mine = parse_semver(ENGINE_VERSION)
        assert mine is not None
        if version[0] != mine[0] or version > mine:
            shown = ".".join(map(str, version))
            raise LoadFailure("LOAD_ERR_VALIDATE", f"Rules require engine version {shown}, but "
                                                   f"engine version is {ENGINE_VERSION}", ctx)
        self.collector.required_engine_version = max(self.collector.required_engine_version,
                                                     version)

    def read_plugin_versions(self, item: YMap) -> None:
        value = item["required_plugin_versions"]
        ctx = (self.loc(value, "required plugin versions", mark=mark_of(value, mark_of(item))),)
        if not isinstance(value, YList):
            raise LoadFailure(YV, "Value of required_plugin_versions must be a sequence", ctx)
        for plugin in value:
            tmp = (*ctx, self.loc(plugin, "required plugin versions entry"))
            if not isinstance(plugin, YMap):
                raise LoadFailure(YV, "Plugin version must be a mapping", tmp)
            name = self.string(plugin, "name", tmp)
            pctx = (*ctx, self.loc(plugin, "required plugin versions entry", name))
            alternatives = [(name, self.string(plugin, "version", pctx))]
            alts = plugin.get("alternatives")
            if alts is not None and not (isinstance(alts, YStr) and alts.is_null):
                if not isinstance(alts, YList):
                    raise LoadFailure(YV, "New required plugin alternatives must be a sequence",
                                      pctx)
                for alt in alts:
                    actx = (*pctx, self.loc(alt, "required plugin versions alternative"))
                    if not isinstance(alt, YMap):
                        raise LoadFailure(YV, "Plugin version alternative must be a mapping", actx)
                    alt_name = self.string(alt, "name", actx)
                    actx = (*pctx, self.loc(alt, "required plugin versions alternative", alt_name))
                    alternatives.append((alt_name, self.string(alt, "version", actx)))
            seen: set[str] = set()
            for alt_name, version in alternatives:
                if parse_semver(version) is None:
                    raise LoadFailure("LOAD_ERR_VALIDATE", f"Invalid required version '{version}' "
                                                           f"for plugin '{alt_name}'", pctx)
                if alt_name in seen:
                    raise LoadFailure("LOAD_ERR_VALIDATE", "Defined multiple alternative version "
                                                           f"requirements for plugin '{alt_name}'",
                                      pctx)
                seen.add(alt_name)
            self.collector.plugin_requirements.append((alternatives, pctx))

    def overrides(self, item: YMap, appendable: tuple[str, ...], replaceable: tuple[str, ...],
                  ctx: Ctx) -> tuple[list[str], list[str]]:
        if "override" not in item:
            return [], []
        value = item["override"]
        if not isinstance(value, YMap):
            raise LoadFailure(YV, "Value of override must be a map", ctx)
        app: list[str] = []
        rep: list[str] = []
        for key, op in value.items():
            if op == "append":
                if key not in appendable:
                    hint = ", use 'replace' instead" if key in replaceable else ""
                    raise LoadFailure(YV, f"Key '{key}' cannot be appended to{hint}", ctx)
                app.append(key)
            elif op == "replace":
                if key not in replaceable:
                    raise LoadFailure(YV, f"Key '{key}' cannot be replaced", ctx)
                rep.append(key)
            else:
                raise LoadFailure(YV, f"Invalid override operation for key '{key}': '{op}'. "
                                      "Allowed values are: append replace ", ctx)
        return app, rep

    def appends(self, item: YMap, kind: str, key: str, ctx: Ctx) -> bool:
        """Whether a list or macro item appends to ``key`` (``append: true`` or an override)."""
        append = bool(self.boolean(item, "append", ctx))
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        app, rep = self.overrides(item, (key,), (key,), ctx)
        if append and (app or rep):
            raise LoadFailure(YV, OVERRIDE_APPEND, ctx)
        self.unknown_keys(item, kind, ctx)
        return append or bool(app)

    def read_list(self, item: YMap) -> None:
        name = self.string(item, "list", (self.loc(item, "list"),))
        ctx = (self.loc(item, "list", name),)
        if not _RE_LIST_NAME.fullmatch(name):
            self.warn("LOAD_INVALID_LIST_NAME", "List has an invalid name. List names should "
                      "match a regular expression: [^()\"'[:space:]=,]+", ctx)
        items = self.strings(item, "items", ctx)
        assert items is not None
        if self.appends(item, "list", "items", ctx):
            self.collector.append_list(name, items, ctx)
        else:
            self.collector.define_list(ListDef(name, items, ctx))

    def read_macro(self, item: YMap) -> None:
        name = self.string(item, "macro", (self.loc(item, "macro"),))
        ctx = (self.loc(item, "macro", name),)
        if not _RE_MACRO_NAME.fullmatch(name):
            self.warn("LOAD_INVALID_MACRO_NAME", "Macro has an invalid name. Macro names should "
                      "match a regular expression: [a-zA-Z]+[a-zA-Z0-9_]*", ctx)
        cond = self.string(item, "condition", ctx)
        cond_ctx = (*ctx, self.loc(item["condition"], "macro condition"))
        if self.appends(item, "macro", "condition", ctx):
            self.collector.append_macro(name, cond, ctx)
        else:
            self.collector.define_macro(MacroDef(name, cond, ctx, cond_ctx))

    def read_rule(self, item: YMap) -> None:
        name = self.string(item, "rule", (self.loc(item, "rule"),))
        if not name:
            raise LoadFailure(YV, "Value must be non-empty", (self.loc(item, "rule"),))
        ctx = (self.loc(item, "rule", name),)
        append = bool(self.boolean(item, "append", ctx))
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        app, rep = self.overrides(item, RULE_APPENDABLE, RULE_REPLACEABLE, ctx)
        if append and (app or rep):
            raise LoadFailure(YV, OVERRIDE_APPEND, ctx)
        self.unknown_keys(item, "rule", ctx)
        source_value = self.scalar(item, "source", ctx, optional=True)
        source = str(source_value or "")
        if app or rep:
            self.read_rule_overrides(item, name, ctx, source, app, rep)
        elif append:
            upd = RuleUpdate(name, ctx, source)
            if "condition" in item:
                upd.cond = self.string(item, "condition", ctx)
                upd.cond_ctx = (*ctx, self.loc(item["condition"], "rule condition"))
            if "exceptions" in item:
                upd.exceptions = self.read_exceptions(item, ctx, append=True)
            if upd.cond is None and not upd.exceptions:
                raise LoadFailure("LOAD_ERR_VALIDATE", "Appended rule must have exceptions or "
                                                       "condition property", ctx)
            self.collector.append_rule(upd, self.check_exception)
        elif not any(k in item for k in ("condition", "output", "desc", "priority")):
            enabled = self.boolean(item, "enabled", ctx, optional=False)
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_ENABLED, ctx)
            self.collector.enable_rule(name, bool(enabled), ctx)
        else:
            self.read_rule_definition(item, name, ctx, source)

    def read_rule_definition(self, item: YMap, name: str, ctx: Ctx, source: str) -> None:
        rule = RuleDef(name, ctx)
        rule.cond = self.string(item, "condition", ctx)
        rule.cond_ctx = (*ctx, self.loc(item["condition"], "rule condition"))
        rule.output = self.string(item, "output", ctx).strip()
        rule.output_ctx = (*ctx, self.loc(item["output"], "rule output"))
        rule.desc = self.string(item, "desc", ctx)
        prio_text = self.string(item, "priority", ctx)
        prio = parse_priority(prio_text)
        if prio is None:
            raise LoadFailure(YV, "Invalid priority", (*ctx, self.loc(item["priority"],
                                                                       "rule priority")))
        rule.priority = prio
        rule.source = source or "syscall"
        for key, attr in (("enabled", "enabled"), ("warn_evttypes", "warn_evttypes"),
                          ("skip-if-unknown-filter", "skip_if_unknown_filter"),
                          ("capture", "capture")):
            value = self.boolean(item, key, ctx)
            if value is not None:
                setattr(rule, attr, value)
        duration = self.uint(item, "capture_duration", ctx)
        if duration is not None:
            rule.capture_duration = duration
        tags = self.strings(item, "tags", ctx, optional=True)
        rule.tags = set(tags or ())
        rule.exceptions = self.read_exceptions(item, ctx, append=False)
        if rule.source not in self.known_sources:
            rule.unknown_source = True
            self.warn("LOAD_UNKNOWN_SOURCE", f"Unknown source {rule.source}, skipping", ctx)
        else:
            for ex in rule.exceptions:
                if ex.fields is None:
                    raise LoadFailure("LOAD_ERR_VALIDATE", "Rule exception item must have fields "
                                                           "property with a list of fields",
                                      ex.ctx)
                if self.check_exception is not None:
                    self.check_exception(ex, rule.source)
        self.collector.define_rule(rule, explicit_source=bool(source))

    def read_rule_overrides(self, item: YMap, name: str, ctx: Ctx, source: str,
                            app: list[str], rep: list[str]) -> None:
        expected = {k for k in RULE_REPLACEABLE if k in item}

        def check(keys: list[str], op: str, key: str) -> bool:
            if key not in keys:
                return False
            if key not in expected:
                article = "An" if op == "append" else "A"
                raise LoadFailure(YV, f"{article} {op} override for '{key}' was specified but "
                                      f"'{key}' is not defined", ctx)
            expected.discard(key)
            return True

        updates = []
        for keys, op in ((app, "append"), (rep, "replace")):
            if not keys:
                continue
            upd = RuleUpdate(name, ctx, source)
            if check(keys, op, "condition"):
                upd.cond = self.string(item, "condition", ctx)
                upd.cond_ctx = (*ctx, self.loc(item["condition"], "rule condition"))
            if check(keys, op, "exceptions"):
                upd.exceptions = self.read_exceptions(item, ctx, append=op == "append")
            if check(keys, op, "output"):
                upd.output = self.string(item, "output", ctx).strip()
                upd.output_ctx = (*ctx, self.loc(item["output"], "rule output"))
            if check(keys, op, "desc"):
                upd.desc = self.string(item, "desc", ctx)
            if check(keys, op, "tags"):
                upd.tags = set(self.strings(item, "tags", ctx) or ())
            if op == "replace":
                if check(keys, op, "priority"):
                    prio = parse_priority(self.string(item, "priority", ctx))
                    if prio is None:
                        raise LoadFailure(YV, "Invalid priority", ctx)
                    upd.priority = prio
                for key, attr in (("enabled", "enabled"), ("warn_evttypes", "warn_evttypes"),
                                  ("skip-if-unknown-filter", "skip_if_unknown_filter"),
                                  ("capture", "capture")):
                    if check(keys, op, key):
                        setattr(upd, attr, self.boolean(item, key, ctx, optional=False))
                if check(keys, op, "capture_duration"):
                    upd.capture_duration = self.uint(item, "capture_duration", ctx)
            updates.append((op, upd))
        if expected:
            key = sorted(expected)[0]
            raise LoadFailure(YV, f"Unexpected key '{key}': no corresponding entry under "
                                  "'override' is defined.", ctx)
        for op, upd in updates:
            if op == "append":
                self.collector.append_rule(upd, self.check_exception)
            else:
                self.collector.replace_rule(upd, self.check_exception)

    def read_exceptions(self, item: YMap, ctx: Ctx, *, append: bool) -> list[ExceptionDef]:
        return read_exceptions(self, item, ctx, append=append)


OVERRIDE_APPEND = ("Keys 'override' and 'append: true' cannot be used together. Add an 'append' "
                   "entry (e.g. 'condition: append') under 'override' instead.")
