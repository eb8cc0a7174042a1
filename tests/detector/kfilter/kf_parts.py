"""What the kernel-filter tests share: the engine and alerts of a replay, random conditions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hypothesis import strategies as st

from detector.events import Event


def rules_engine(files: list[Path]) -> object:
    """A rules engine over ``files`` that reports every matching rule."""
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import load_rules_files

    return RulesEngine(load_rules_files(files), min_priority="debug", rule_matching="all")


def alerts(rules: object, events: Iterable[Event]) -> list[tuple[str, int, str]]:
    """(rule, event number, output text) of every alert, the events tracked without /proc."""
    from detector.state.tracker import StateTracker

    tracker = StateTracker(fetch_containers=False, read_proc=False)
    out = []
    for ev in events:
        ev = tracker.process(ev)
        out += [(a.rule, ev.num, a.message) for a in rules.process(ev)]  # type: ignore[attr-defined]
    return out


def conditions(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Conditions of up to six ``atoms`` under and, or, not."""
    return st.recursive(atoms, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} and {b})", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ), max_leaves=6)  # fmt: skip
