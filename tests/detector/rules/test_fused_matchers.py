"""The fused per-type matchers (rules indexed by event type, each rule's ``and`` chain reordered
cheapest-first, matchers built at load) raise the alerts of evaluating every rule plainly: on a
recording of real workloads, for each upstream rules file, the engine's matches equal the
tree-walking reference evaluator's, rule by rule and event by event."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detector.events import Event
from detector.rules.engine import RulesEngine
from detector.rules.eval.reference import ReferenceEvaluator
from detector.rules.load.loader import load_rules_files
from detector.state.tracker import StateTracker
from tests.detector.kfilter.test_replay import FILES, RULES_DIR
from tests.detector.kfilter.test_replay import captured as captured  # the real-kernel fixtures
from tests.detector.kfilter.test_replay import recording as recording

pytestmark = [pytest.mark.root, pytest.mark.bpf]


def _plain(rules: list[Any], ev: Event) -> list[str]:
    out = []
    for rule, ref in rules:
        try:
            hit = ref(ev)
        except Exception:  # a field that cannot be read: the rule does not match (as the engine)
            hit = False
        if hit:
            out.append(rule.name)
    return out


@pytest.mark.parametrize("name", FILES)
def test_fused_matchers_match_as_every_rule_evaluated_plainly(recording: list[Event],
                                                              name: str) -> None:
    files = [RULES_DIR / FILES[0]] + ([RULES_DIR / name] if name != FILES[0] else [])
    engine = RulesEngine(load_rules_files(files), min_priority="debug", rule_matching="all",
                         hostname="h")
    assert engine.prepare() > 10
    plain = [(r, ReferenceEvaluator(r.compiled.node, r.compiled.provider)) for r in engine.rules]
    tracker = StateTracker(fetch_containers=False, read_proc=False)
    fired = 0
    for ev in copy.deepcopy(recording):
        ev = tracker.process(ev)
        got = [a.rule for a in engine.process(ev)]
        assert got == _plain(plain, ev), (ev.type, ev.args)
        fired += len(got)
    assert fired, "the workload raises alerts (it reads /etc/shadow)"
