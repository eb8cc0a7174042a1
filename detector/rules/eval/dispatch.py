"""Per-event-type matchers: every rule an event type can meet, fused into one generated function.

:class:`RuleIndex` takes the compiled conditions of a ruleset in load order. For each event type
it generates one function that binds the event's locals once and tests, in order, only the rules
whose inferred types include that type, each specialised for it (``evt.type`` checks folded,
rules that cannot match dropped). Functions are built on the first event of each type, or all
at once by ``prepare()`` (the runtime does so when it loads rules).

``index.match(event)`` returns the matching rules (only the first in ``first`` mode, Falco's
default ``rule_matching``). A field that raises while being read (a malformed event) makes the
matcher fall back to testing rule by rule, where a raising rule counts as not matching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from detector.rules.eval.codegen import CompiledCondition, helpers_for
from detector.rules.eval.sharing import ConstPool, finalize
from detector.rules.fields.registry import EVENT

R = TypeVar("R")
_EMPTY: tuple[Any, ...] = ()


class RuleIndex(Generic[R]):
    """Rules indexed by event type, each type with one fused generated matcher."""

    def __init__(self, entries: Sequence[tuple[R, CompiledCondition]], *,
                 first: bool = True) -> None:
        self.entries = list(entries)
        self.first = first
        self.by_type: dict[str, Callable[[Any], tuple[R, ...]]] = {}  # the matchers built so far
        self.sources: dict[str, str] = {}

    def match(self, event: Any) -> tuple[R, ...]:
        """The rules ``event`` matches, in load order (at most one in ``first`` mode)."""
        fn = self.by_type.get(event.type)
        if fn is None:
            fn = self.matcher(event.type)
        return fn(event)

    def matcher(self, evttype: str) -> Callable[[Any], tuple[R, ...]]:
        """The fused function for one event type (built now if needed)."""
        fn = self.by_type.get(evttype)
        if fn is None:
            fn = self.by_type[evttype] = self.build(evttype)
        return fn

    def prepare(self) -> int:
        """Build the matcher of every event type a condition names; returns how many."""
        types = sorted({t for _, cc in self.entries for t in cc.evttypes or ()})
        for evttype in types:
            self.matcher(evttype)
        return len(types)

    def candidates(self, evttype: str) -> list[R]:
        """The rules an event of this type meets, before their conditions are tested."""
        return [r for r, cc in self.entries if cc.evttypes is None or evttype in cc.evttypes]

    def build(self, evttype: str) -> Callable[[Any], tuple[R, ...]]:
        """Generate and compile the matcher for ``evttype``."""
        env: dict[str, Any] = {}
        helpers: dict[str, Any] = helpers_for(EVENT)
        pool = ConstPool()
        exprs: list[tuple[int, str]] = []
        slow: list[tuple[R, Callable[[Any], bool]]] = []
        for i, (rule, cc) in enumerate(self.entries):
            if cc.evttypes is not None and evttype not in cc.evttypes:
                continue
            expr, cenv = cc.generate(evttype, pool=pool)
            if expr == "False":
                continue
            spec = cc.specialize(evttype)
            if spec is not None:
                slow.append((rule, spec))
            env.update(cenv)
            if cc.provider is not EVENT:  # fields of plugins: their readers
                helpers.update(cc.provider.helpers)
            env[f"_rule{i}"] = rule
            env[f"_one{i}"] = (rule,)
            exprs.append((i, expr))
        if not exprs:
            return _none
        shared, final = finalize([x for _, x in exprs])
        tests: list[str] = []
        used: list[str] = []
        for (i, _), expr in zip(exprs, final, strict=True):
            used.extend(EVENT.prelude[n] for n in EVENT.locals_used(expr))
            if self.first:
                tests.append(f"        if {expr}:\n            return _one{i}")
            else:
                tests.append(f"        if {expr}:\n            _out.append(_rule{i})")
        safe = _safe_matcher(slow, self.first)
        prelude = [s for s in EVENT.prelude.values() if s in used]
        body = ["def _match(e):", "    try:", *("        " + s for s in prelude),
                *("        " + s for s in shared)]
        if not self.first:
            body.append("        _out = []")
        body += tests
        body.append("        return _EMPTY" if self.first else "        return tuple(_out)")
        body += ["    except Exception:", "        return _safe(e)"]
        source = "\n".join(body)
        ns: dict[str, Any] = {**helpers, **env, "_EMPTY": _EMPTY, "_safe": safe}
        try:
            exec(compile(source, f"<rules for {evttype}>", "exec"), ns)
        except (SyntaxError, RecursionError, MemoryError):
            return safe
        self.sources[evttype] = source
        fn: Callable[[Any], tuple[R, ...]] = ns["_match"]
        return fn


def _none(event: Any) -> tuple[Any, ...]:
    return _EMPTY


def _safe_matcher(tests: list[tuple[R, Callable[[Any], bool]]],
                  first: bool) -> Callable[[Any], tuple[R, ...]]:
    def run(event: Any) -> tuple[R, ...]:
        out: list[R] = []
        for rule, fn in tests:
            try:
                hit = fn(event)
            except Exception:  # a malformed event: this rule does not match
                hit = False
            if hit:
                out.append(rule)
                if first:
                    break
        return tuple(out)

    return run
