"""Rules on plugin event sources, compiled against the real counter plugin's fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import load_config
from detector.plugins import load_plugins
from detector.plugins.rules import compile_plugin_rules
from falcoctl_py.errors import LocatedError

_RULE = ("- rule: Counter rule\n  desc: x\n  condition: {cond}\n  output: n=%counter.n\n"
         "  priority: ERROR\n  source: counter\n")


def _compile(counter_lib: Path, rules: Path) -> None:
    cfg = load_config(overrides=["load_plugins=[counter]", "plugins[0].name=counter",
                                 f"plugins[0].library_path={counter_lib}"])
    loaded = load_plugins(cfg)
    try:
        compile_plugin_rules([rules], {"counter": loaded.extractors("counter")})
    finally:
        loaded.destroy()


def test_condition_syntax_error_names_the_rules_file_and_line(counter_lib: Path,
                                                              tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- list: big\n  items: [4, 5]\n" + _RULE.format(cond="counter.n = ("))
    with pytest.raises(LocatedError) as err:
        _compile(counter_lib, rules)
    assert str(err.value).startswith(f"{rules}:3: ")


def test_unknown_field_names_the_rule_and_the_plugin_fields(counter_lib: Path,
                                                            tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULE.format(cond="counter.nope = 1"))
    with pytest.raises(LocatedError, match="Counter rule") as err:
        _compile(counter_lib, rules)
    assert str(err.value).startswith(f"{rules}:1: ")
    assert "counter.msg" in (err.value.hint or "")
