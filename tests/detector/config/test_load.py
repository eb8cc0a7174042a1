"""falco.yaml loading: defaults, -o overrides, type errors with paths, rules paths order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.config import apply_override, data_dir, expand_rules_paths, load_config
from falcoctl_py.errors import ConfigError


def test_embedded_default_has_falco_defaults() -> None:
    cfg = load_config()
    assert cfg.path is None
    assert cfg.rules_files == ("falcoctl-py_rules.yaml",)
    # The embedded config's relative rules paths resolve next to it, to the default rules.
    [rules] = expand_rules_paths(cfg.rules_files, base=data_dir())
    repo = Path(__file__).resolve().parents[3]
    assert rules.read_bytes() == (repo / "index/rules/falcoctl-py_rules.yaml").read_bytes()
    assert cfg.engine_kind == "ebpf"
    assert cfg.webserver.listen_port == 8765
    assert cfg.priority == "debug"
    assert cfg.json_output is False
    assert cfg.warnings == ()


def test_overrides_follow_falco_syntax() -> None:
    raw: dict[str, object] = {"rules": [], "plugins": [{"name": "a"}]}
    apply_override(raw, "json_output=true")
    apply_override(raw, "http_output.url=http://x:1/")
    apply_override(raw, "rules[].disable.rule=*")
    apply_override(raw, "rules[].enable.tag=network")
    apply_override(raw, "plugins[0].library_path=liba.so")
    apply_override(raw, "load_plugins=[a, b]")
    apply_override(raw, r"append_output.extra_fields.k8s\.pod=1")
    assert raw["json_output"] is True
    assert raw["http_output"] == {"url": "http://x:1/"}
    assert raw["rules"] == [{"disable": {"rule": "*"}}, {"enable": {"tag": "network"}}]
    assert raw["plugins"] == [{"name": "a", "library_path": "liba.so"}]
    assert raw["load_plugins"] == ["a", "b"]
    assert raw["append_output"] == {"extra_fields": {"k8s.pod": 1}}


def test_wrong_type_fails_with_the_key_path(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text("webserver:\n  listen_port: eighty\n")
    with pytest.raises(ConfigError, match=r"webserver\.listen_port: expected an integer"):
        load_config(path=f)
    with pytest.raises(ConfigError, match=r"rules_files\[1\]: expected a string"):
        load_config(overrides=["rules_files=[a.yaml, {x: 1}]"])
    with pytest.raises(ConfigError, match=r"engine\.kind"):
        load_config(overrides=["engine.kind=gvisor"])
    with pytest.raises(ConfigError, match="priority"):
        load_config(overrides=["priority=loud"])


def test_unknown_keys_warn(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text("stdout_output:\n  enabled: true\n  colour: red\nnot_a_key: 1\n")
    seen: list[str] = []
    cfg = load_config(path=f, warn=seen.append)
    assert any("stdout_output.colour" in w for w in seen)
    assert any("not_a_key" in w for w in cfg.warnings)


def test_legacy_rules_file_and_r_flag(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text("rules_file:\n  - /a.yaml\n")
    assert load_config(path=f).rules_files == ("/a.yaml",)
    assert load_config(path=f, rules_files=["/b.yaml"]).rules_files == ("/b.yaml",)


def test_plugins_and_selectors(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text(
        "load_plugins: [json]\n"
        "plugins:\n"
        "  - name: json\n    library_path: libjson.so\n"
        "    init_config:\n      maxEventSize: 10\n    open_params: '  x  '\n"
        "rules:\n  - disable: {rule: '*'}\n  - enable: {tag: network}\n"
        "priority: INFO\n"
    )
    cfg = load_config(path=f)
    (plugin,) = cfg.plugins
    assert json.loads(plugin.init_config) == {"maxEventSize": 10}
    assert plugin.open_params == "x"
    assert [(s.action, s.rule, s.tag) for s in cfg.rule_selectors] == [
        ("disable", "*", None), ("enable", None, "network")]
    assert cfg.priority == "informational"
    f.write_text("plugins:\n  - name: x\n")
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.library_path"):
        load_config(path=f)


def test_rules_paths_in_order(tmp_path: Path) -> None:
    d = tmp_path / "rules.d"
    d.mkdir()
    for name in ("b.yml", "a.yaml", "c.txt", "0.yaml"):
        (d / name).write_text("[]\n")
    first = tmp_path / "z_first.yaml"
    first.write_text("[]\n")
    got = expand_rules_paths([str(first), str(d)])
    assert [p.name for p in got] == ["z_first.yaml", "0.yaml", "a.yaml", "b.yml"]
    with pytest.raises(ConfigError, match="does not exist"):
        expand_rules_paths([str(tmp_path / "missing.yaml")])


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text("a: [\n")
    with pytest.raises(ConfigError, match=str(f)):
        load_config(path=f)
