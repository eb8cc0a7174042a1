"""``falcoctl-py rules filters``: what a kernel filter derived from rules files keeps, in words."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from detector.kfilter.analysis import Keep, TypeFilter, derive, rule_filters

NAMES_SHOWN = 8  # comm names listed per set before "and N more"


@dataclass(frozen=True, slots=True)
class TypeReport:
    """One event type: what is kept, which rules match it, which leave it unfiltered."""

    evttype: str
    keeps: str
    filtered: bool
    rules: tuple[str, ...]
    unfiltered_by: tuple[str, ...]
    contributions: tuple[tuple[str, str], ...]  # (rule, what it alone would keep)
    state: bool  # the state tables need every event of this type as well


def _names(names: frozenset[str]) -> str:
    shown = sorted(names)[:NAMES_SHOWN]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def describe(keep: Keep) -> str:
    """A Keep in words."""
    if keep.bottom:
        return "nothing (no rule can match)"
    if keep.top:
        return "every event"
    parts = []
    if keep.comms is not None:
        parts.append(f"proc.name is one of {_names(keep.comms)}")
    if keep.not_comms:
        parts.append(f"proc.name is none of {_names(keep.not_comms)}")
    if keep.success:
        parts.append("the syscall succeeded")
    return "events where " + " and ".join(parts)


def filters(*, paths: Sequence[str | os.PathLike[str]]) -> list[TypeReport]:
    """Load the rules files and describe the kernel filter of every event type they use."""
    from detector.rules.load.loader import load_rules_files
    from detector.sources.syscalls import STATE_SET, SUPPORTED

    ruleset = load_rules_files(paths)
    rfs = rule_filters(ruleset.rules)
    by_type = derive(rfs, SUPPORTED)
    keeps = {rf.name: rf.keep for rf in rfs}
    out = []
    for t, tf in by_type.items():
        if not tf.rules:
            continue
        out.append(_report(tf, keeps, t in STATE_SET))
    return out


def _report(tf: TypeFilter, keeps: dict[str, Keep], state: bool) -> TypeReport:
    return TypeReport(tf.evttype, describe(tf.keep), not tf.keep.top, tuple(tf.rules),
                      tuple(tf.unfiltered_by),
                      tuple((r, describe(keeps[r])) for r in tf.rules), state)  # fmt: skip
