"""``falcoctl-py rules validate -c falco.yaml``: the config's plugins are loaded (a real C
plugin built here), so a plugin's rules file validates with its source, fields and versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detector.plugins.conftest import counter_lib  # noqa: F401 - fixture
from tests.falcoctl_py.cli.clirun import run_cli

RULES = """\
- required_plugin_versions:
    - name: counter
      version: {version}
- rule: Counter even
  desc: even counter events
  condition: counter.even = true and counter.{field} > 0
  output: n=%counter.n
  priority: INFO
  source: counter
"""


def _files(tmp_path: Path, lib: Path, *, version: str = "0.2.0", field: str = "n",
           ) -> tuple[Path, Path]:
    rules = tmp_path / "counter_rules.yaml"
    rules.write_text(RULES.format(version=version, field=field))
    falco_yaml = tmp_path / "falco.yaml"
    falco_yaml.write_text(f"load_plugins: [counter]\nplugins:\n  - name: counter\n"
                          f"    library_path: {lib}\nrules_files: [{rules}]\n")
    return falco_yaml, rules


def test_plugin_rules_validate_with_the_config(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path,
                                               counter_lib: Path) -> None:  # noqa: F811
    falco_yaml, rules = _files(tmp_path, counter_lib)
    alone = run_cli(capsys, "rules", "validate", str(rules))
    assert alone.code == 1 and "counter" in alone.stdout  # no plugin: its version is missing
    res = run_cli(capsys, "rules", "validate", "-c", str(falco_yaml), str(rules))
    assert res.code == 0, res.stdout + res.stderr
    assert res.stdout.splitlines()[0] == f"{rules}: Ok"
    # no files: the config's rules_files
    assert run_cli(capsys, "rules", "validate", "-c", str(falco_yaml)).stdout.startswith(
        f"{rules}: Ok")


def test_a_wrong_plugin_field_or_version_is_invalid(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path,
                                                    counter_lib: Path) -> None:  # noqa: F811
    falco_yaml, _rules = _files(tmp_path, counter_lib, field="nope")
    res = run_cli(capsys, "rules", "validate", "-c", str(falco_yaml))
    assert res.code == 1 and "counter.nope" in res.stdout
    falco_yaml, _rules = _files(tmp_path, counter_lib, version="0.9.0")
    res = run_cli(capsys, "rules", "validate", "-c", str(falco_yaml))
    assert res.code == 1
    assert "Plugin requirement not satisfied" in res.stdout and "counter" in res.stdout


def test_a_missing_plugin_library_is_one_line(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    missing = tmp_path / "libgone.so"
    falco_yaml, _rules = _files(tmp_path, missing)
    res = run_cli(capsys, "rules", "validate", "-c", str(falco_yaml))
    assert res.code != 0 and res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert "'counter'" in res.stderr and str(missing) in res.stderr


def test_without_files_or_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "rules", "validate")
    assert res.code == 2 and "missing rules files" in res.stderr
