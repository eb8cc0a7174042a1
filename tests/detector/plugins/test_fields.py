"""Rules of every source through the one loader, against the real counter plugin's fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detector.config import load_config
from detector.events import Event
from detector.plugins import LoadedPlugins, events_from, load_plugins
from detector.runtime.ruleset import RuleSet, compile_rules
from falcoctl_py.errors import LocatedError
from tests.detector.plugins.conftest import build_counter

_RULE = ("- rule: Counter rule\n  desc: x\n  condition: {cond}\n  output: n=%counter.n\n"
         "  priority: ERROR\n  source: counter\n")


@pytest.fixture(scope="module")
def syscall_counter_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The counter plugin built to extract on ``syscall`` events too."""
    return build_counter(tmp_path_factory.mktemp("plugin-syscall"), "-DCOUNTER_SYSCALL")


@pytest.fixture()
def plugins(request: pytest.FixtureRequest) -> Iterator[LoadedPlugins]:
    lib = request.getfixturevalue(getattr(request, "param", "counter_lib"))
    loaded = load_plugins(_config(lib))
    yield loaded
    loaded.destroy()


def _config(lib: Path, *extra: str) -> Any:
    return load_config(overrides=["load_plugins=[counter]", "plugins[0].name=counter",
                                  f"plugins[0].library_path={lib}", "append_output=[]", *extra])


def _compile(plugins: LoadedPlugins, rules: Path, *extra: str) -> RuleSet:
    lib = plugins.plugins[0][0].library_path
    return compile_rules(files=[rules], config=_config(Path(lib), *extra), plugins=plugins)


def _counter_events(plugins: LoadedPlugins, n: int) -> list[Event]:
    plugin = plugins.plugins[0][1]
    return [Event(num=r.num, ts=r.ts, type="pluginevent", source=r.source, plugin_data=r.data)
            for r in events_from(plugin, str(n))]


def _fire(rs: RuleSet, events: list[Event]) -> list[Any]:
    return [a for e in events for a in rs.engine.process(e)]


def test_condition_syntax_error_names_the_rules_file_and_line(plugins: LoadedPlugins,
                                                              tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- list: big\n  items: [4, 5]\n" + _RULE.format(cond="counter.n = ("))
    with pytest.raises(LocatedError) as err:
        _compile(plugins, rules)
    assert str(err.value).startswith(f"{rules}:5: ")
    assert "LOAD_ERR_COMPILE_CONDITION" in str(err.value)


@pytest.mark.parametrize(("field", "near"), [("counter.mgs", "counter.msg"),
                                             ("proc.name", None)])
def test_unknown_field_gives_the_place_and_a_suggestion(plugins: LoadedPlugins, tmp_path: Path,
                                                        field: str, near: str | None) -> None:
    # proc.name exists, but not for the counter source: plugin sources get the plugins'
    # fields and the generic evt.* ones only.
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULE.format(cond=f"{field} = 1"))
    with pytest.raises(LocatedError) as err:
        _compile(plugins, rules)
    assert str(err.value).startswith(f"{rules}:3: filter_check called with nonexistent field "
                                     f"{field} (LOAD_ERR_COMPILE_CONDITION)")
    hint = err.value.hint or ""
    assert "fields of source counter: counter.n, counter.msg" in hint
    if near:
        assert f"did you mean '{near}'?" in hint


def test_plugin_rule_with_exceptions_lists_macros_and_overrides(plugins: LoadedPlugins,
                                                                tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- list: skipped_msgs\n  items: [evt-5]\n"
        "- macro: counted\n  condition: counter.n > 0\n"
        "- rule: Counter rule\n  desc: x\n  condition: counted and evt.source = counter\n"
        "  output: n=%counter.n info=%evt.plugininfo by=%evt.pluginname\n"
        "  priority: ERROR\n  source: counter\n  exceptions:\n"
        "    - name: small\n      fields: [counter.n]\n      comps: [<=]\n      values: [[2]]\n"
        "    - name: msgs\n      fields: counter.msg\n      comps: in\n"
        "      values: [skipped_msgs]\n"
        "- rule: Counter rule\n  exceptions:\n    - name: small\n      values: [[3]]\n"
        "  override:\n    exceptions: append\n"
        "- rule: Opens\n  desc: x\n  condition: evt.type = openat and counted\n"
        "  output: x\n  priority: ERROR\n")  # a syscall rule: counter.n is not its field
    with pytest.raises(LocatedError, match=r"nonexistent field counter\.n"):
        _compile(plugins, rules)
    rules.write_text(rules.read_text().replace("and counted\n", "and proc.name in "
                                                                "(skipped_msgs)\n"))
    rs = _compile(plugins, rules)
    assert rs.sources == {"syscall", "counter"} and rs.rule_count == 2
    assert rs.warnings == []  # the list and the macro are used (by either source)
    alerts = _fire(rs, _counter_events(plugins, 6))
    assert [a.output_fields["counter.n"] for a in alerts] == [4, 6]  # 1-3 and 5 excepted
    assert alerts[0].source == "counter" and alerts[0].rule == "Counter rule"
    assert alerts[0].message == "n=4 info=evt-4 by=counter"


def test_priority_and_rules_of_sources_without_a_plugin(plugins: LoadedPlugins,
                                                        tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULE.format(cond="counter.n > 0").replace("ERROR", "NOTICE")
                     + _RULE.format(cond="counter.nope > 0").replace("Counter rule", "Skipped")
                     + "  skip-if-unknown-filter: true\n"
                     + "- rule: Audit\n  desc: x\n  condition: ka.verb = get\n  output: x\n"
                       "  priority: ERROR\n  source: k8s_audit\n")
    rs = _compile(plugins, rules, "priority=warning")
    assert rs.rule_count == 0 and rs.sources == {"syscall"}
    assert any("Unknown source k8s_audit, skipping" in w for w in rs.warnings)
    assert any("nonexistent field counter.nope" in w for w in rs.warnings)  # rule dropped
    assert len(_fire(_compile(plugins, rules), _counter_events(plugins, 2))) == 2


@pytest.mark.parametrize("plugins", ["syscall_counter_lib"], indirect=True)
def test_syscall_rule_reads_a_field_of_a_plugin_extracting_on_syscall(
        plugins: LoadedPlugins, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: Thread 4242 opens\n  desc: x\n"
        "  condition: evt.type = openat and counter.tid = 4242\n"
        "  output: tid=%counter.tid n=%counter.n proc=%proc.name\n  priority: WARNING\n"
        + _RULE.format(cond="counter.n > 1 and counter.msg startswith evt and "
                            "counter.word[k] != x").replace("n=%counter.n", "c=%counter.calls"))
    rs = _compile(plugins, rules)
    assert rs.event_types == frozenset({"openat"})
    opens = [Event(num=i, ts=1_700_000_000_000_000_000 + i, type="openat", tid=tid)
             for i, tid in enumerate((1, 4242, 4242), 1)]
    alerts = _fire(rs, [*opens, Event(num=4, ts=1, type="close", tid=4242)])
    assert [a.output_fields for a in alerts] == [
        {"evt.time": opens[i].ts, "counter.tid": 4242, "counter.n": None, "proc.name": None}
        for i in (1, 2)]
    assert alerts[0].message == "tid=4242 n=<NA> proc=<NA>"
    # On the plugin's own events, every field a rule reads comes from one extract call.
    plugin = plugins.plugins[0][1]
    before = plugin.extract(next(events_from(plugin, "1")), "counter.calls", None)
    assert isinstance(before, int)
    calls = [a.output_fields["counter.calls"] for a in
             _fire(rs, _counter_events(plugins, 4))]
    assert calls == [before + 2, before + 3, before + 4]
