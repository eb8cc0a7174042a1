"""The rules engine: indexing by event type, matching modes, selectors, priorities, alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.errors import DetectorError
from detector.events import Event, FdInfo, ThreadInfo, UserInfo
from detector.rules.engine import RuleSelector, RulesEngine, selectors_from_config
from detector.rules.load.loader import Ruleset, load_rules_files

RULES = Path(__file__).parent / "data" / "small_rules.yaml"
TS = 1470327477881781397


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_rules_files([RULES])


def _thread(comm: str, args: list[str], parent: str = "nginx") -> ThreadInfo:
    p = ThreadInfo(tid=10, pid=10, comm=parent, exe=parent, exepath=f"/usr/sbin/{parent}")
    return ThreadInfo(tid=11, pid=11, ppid=10, comm=comm, exe=comm, exepath=f"/bin/{comm}",
                      args=args, parent=p, user=UserInfo(0, "root"))


def _execve(comm: str = "bash", parent: str = "nginx", num: int = 1) -> Event:
    return Event(num=num, ts=TS, type="execve", tid=11, res=0, args={"filename": f"/bin/{comm}"},
                 thread=_thread(comm, ["-c", "id"], parent))


def _open(path: str, flags: int = 0) -> Event:
    fd = FdInfo(num=3, type="file", name=path, nameraw=path, open_flags=flags)
    return Event(num=2, ts=TS, type="openat", tid=11, res=3,
                 args={"fd": 3, "name": path, "flags": flags}, thread=_thread("cat", [path]),
                 fd=fd)


def test_first_match_in_load_order(ruleset: Ruleset) -> None:
    engine = RulesEngine(ruleset, hostname="h", time_format_iso_8601=True)
    (alert,) = engine.process(_execve())
    assert alert.rule == "Run shell untrusted" and alert.priority_name == "Notice"
    assert alert.output == ("2016-08-04T16:17:57.881781397+0000: Notice Shell spawned by "
                            "untrusted binary (parent=nginx command=bash -c id user=root)")
    assert alert.tags == ("host", "maturity_stable", "mitre_execution", "process", "shell")
    doc = json.loads(alert.as_json())
    assert doc["output_fields"] == {"evt.time.iso8601": TS, "proc.pname": "nginx",
                                    "proc.cmdline": "bash -c id", "user.name": "root"}
    assert doc["hostname"] == "h" and doc["time"] == "2016-08-04T16:17:57.881781397Z"
    assert [a.rule for a in engine.process(_execve(parent="sshd"))] == ["Any shell"]
    assert engine.process(_execve(comm="ls")) == []


def test_all_matching_rules(ruleset: Ruleset) -> None:
    engine = RulesEngine(ruleset, rule_matching="all", hostname="h")
    assert [a.rule for a in engine.process(_execve())] == ["Run shell untrusted", "Any shell"]


def test_index_by_event_type(ruleset: Ruleset) -> None:
    engine = RulesEngine(ruleset, hostname="h")
    assert [r.name for r in engine.candidates("execve")] == ["Run shell untrusted", "Any shell"]
    assert [r.name for r in engine.candidates("openat")] == ["Read sensitive file"]
    assert engine.candidates("connect") == []
    assert [a.rule for a in engine.process(_open("/etc/shadow"))] == ["Read sensitive file"]
    assert engine.process(_open("/etc/shadow", flags=1)) == []  # O_WRONLY is not a read
    assert engine.process(_open("/etc/hosts")) == []


def test_priority_threshold(ruleset: Ruleset) -> None:
    engine = RulesEngine(ruleset, min_priority="warning", hostname="h")
    assert [r.name for r in engine.rules] == ["Read sensitive file"]
    assert engine.process(_execve()) == []
    with pytest.raises(DetectorError, match="unknown priority"):
        RulesEngine(ruleset, min_priority="loud")


def test_selectors_enable_and_disable(ruleset: Ruleset) -> None:
    selectors = selectors_from_config([{"disable": {"tag": "process"}},
                                       {"enable": {"rule": "Disabled*"}}])
    assert selectors == [RuleSelector(False, None, "process"),
                         RuleSelector(True, "Disabled*", None)]
    engine = RulesEngine(ruleset, selectors=selectors, hostname="h")
    assert [r.name for r in engine.rules] == ["Read sensitive file", "Disabled rule", "Never"]
    assert [a.rule for a in engine.process(_execve())] == ["Disabled rule"]
    with pytest.raises(DetectorError):
        selectors_from_config([{"toggle": {"rule": "x"}}])


def test_never_true_rules_never_fire(ruleset: Ruleset) -> None:
    engine = RulesEngine(ruleset, rule_matching="all", hostname="h")
    never = ruleset.rule("Never")
    assert never is not None and never.evttypes == frozenset()
    assert all(a.rule != "Never" for a in engine.process(_execve(num=0)))


def test_prepared_matchers_alert_as_lazily_built_ones(ruleset: Ruleset) -> None:
    lazy = RulesEngine(ruleset, hostname="h", rule_matching="all")
    ready = RulesEngine(ruleset, hostname="h", rule_matching="all")
    assert ready.prepare() >= 2 and {"execve", "openat"} <= set(ready._index.by_type)
    events = [_execve(), _execve("bash", "sshd"), _open("/etc/shadow"), _open("/tmp/x")]
    assert [[a.output for a in ready.process(e)] for e in events] == [
        [a.output for a in lazy.process(e)] for e in events]
    assert ready.process(_execve())  # the prepared index still fires
