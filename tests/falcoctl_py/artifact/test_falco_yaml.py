"""update_falco_config adds what was installed and keeps the file's comments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detector.config import load_config
from falcoctl_py.artifact.falco_yaml import update_falco_config
from falcoctl_py.errors import ConfigError

FALCO_YAML = """\
# Falco's configuration (a comment to keep)
rules_files:
  - /etc/falco/falco_rules.yaml   # the stable rules
  - /etc/falco/rules.d

# plugins
load_plugins: [json]
plugins:
  - name: json
    library_path: libjson.so
    init_config: ""
json_output: true  # for falcosidekick
"""


def test_adds_and_keeps_comments(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text(FALCO_YAML)
    os.chmod(f, 0o640)
    res = update_falco_config(
        f, ["/etc/falco/k8s_audit_rules.yaml", "/etc/falco/rules.d/extra.yaml"],
        {"k8saudit": "/usr/share/falco/plugins/libk8saudit.so", "json": "libjson.so"})
    text = f.read_text()
    assert "# Falco's configuration (a comment to keep)" in text
    assert "# the stable rules" in text and "# for falcosidekick" in text
    assert res.added_rules_files == ["/etc/falco/k8s_audit_rules.yaml"]  # rules.d covers extra
    assert res.added_plugins == ["k8saudit"] and res.added_load_plugins == ["k8saudit"]
    assert f.stat().st_mode & 0o777 == 0o640
    cfg = load_config(path=f)  # the detector reads the result
    assert list(cfg.rules_files)[-1] == "/etc/falco/k8s_audit_rules.yaml"
    assert list(cfg.load_plugins) == ["json", "k8saudit"]
    assert [p.name for p in cfg.plugins] == ["json", "k8saudit"]
    assert cfg.plugins[1].library_path == "/usr/share/falco/plugins/libk8saudit.so"
    again = update_falco_config(f, ["/etc/falco/k8s_audit_rules.yaml"],
                                {"k8saudit": "/usr/share/falco/plugins/libk8saudit.so"})
    assert not again.changed and f.read_text() == text


def test_creates_keys_with_falcos_defaults(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text("# only a comment\njson_output: false\n")
    update_falco_config(f, ["/opt/r.yaml"], {"dummy": "/opt/libdummy.so"})
    cfg = load_config(path=f)
    assert list(cfg.rules_files) == ["/etc/falco/falco_rules.yaml", "/opt/r.yaml",
                                     "/etc/falco/falco_rules.local.yaml", "/etc/falco/rules.d"]
    assert list(cfg.load_plugins) == ["dummy"]
    assert f.read_text().startswith("# only a comment\n")


def test_legacy_rules_file_and_bad_input(tmp_path: Path) -> None:
    f = tmp_path / "falco.yaml"
    f.write_text("rules_file:\n  - /a.yaml\n")
    update_falco_config(f, ["/b.yaml"], {})
    assert list(load_config(path=f).rules_files) == ["/a.yaml", "/b.yaml"]
    f.write_text("rules_files: /a.yaml\n")
    with pytest.raises(ConfigError, match="rules_files: expected a list"):
        update_falco_config(f, ["/b.yaml"], {})
    assert f.read_text() == "rules_files: /a.yaml\n"  # untouched
    with pytest.raises(ConfigError, match="cannot read"):
        update_falco_config(tmp_path / "nope.yaml", [], {})


FALCO_DEFAULT_LAYOUT = """\
rules_files:
  - /etc/falco/falco_rules.yaml
  - /etc/falco/falco_rules.local.yaml
  - /etc/falco/rules.d
json_output: false
"""


def test_rules_go_before_local_overrides_and_no_empty_plugin_keys(tmp_path: Path) -> None:
    """Falco 0.42-0.44's layout: local overrides stay last; no ``plugins: []`` appears."""
    f = tmp_path / "falco.yaml"
    f.write_text(FALCO_DEFAULT_LAYOUT)
    update_falco_config(f, ["/opt/rules/app_rules.yaml"], {})
    cfg = load_config(path=f)
    assert list(cfg.rules_files) == [
        "/etc/falco/falco_rules.yaml",
        "/opt/rules/app_rules.yaml",
        "/etc/falco/falco_rules.local.yaml",
        "/etc/falco/rules.d",
    ]
    text = f.read_text()
    assert "plugins" not in text and "load_plugins" not in text
