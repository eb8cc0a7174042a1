"""The CLI as a drop-in for falcoctl, run as the Falco chart runs it: a subprocess whose stdout
and stderr are pipes (not terminals), with falcoctl's persistent flags after the sub-command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.push import push_artifact
from tests.eventually import eventually
from tests.falcoctl_py.artifact_helpers import write_index
from tests.realparts import Registry

SCRIPT = Path(sys.executable).parent / "falcoctl-py"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``falcoctl-py ARGS`` as a separate process, stdout and stderr piped."""
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                          timeout=120, check=False)


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of ``text`` parsed as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def chart(registry: Registry, tmp_path: Path, isolated_home: Path) -> Path:
    """falcoctl.yaml as the Falco chart renders it (its documented values), over a local index
    and registry holding ``falco-rules`` with several versions."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "falco_rules.yaml").write_text("- list: shells\n  items: [bash]\n")
    with RegistryClient(plain_http=True) as client:
        for version in ("4.0.0", "4.2.0", "4.10.0"):
            push_artifact(client=client, ref=registry.ref("rules/falco-rules", version),
                          files=[src / "falco_rules.yaml"], artifact_type="rulesfile",
                          version=version, add_floating_tags=True)
    index = write_index(tmp_path / "index.yaml", registry,
                        {"falco-rules": ("rulesfile", "rules/falco-rules")})
    config = {
        "artifact": {
            "allowedTypes": ["rulesfile", "plugin"],
            "install": {"resolveDeps": True, "refs": ["falco-rules:4"],
                        "rulesfilesDir": str(tmp_path / "rulesfiles"),
                        "pluginsDir": str(tmp_path / "plugins"),
                        "statedir": str(tmp_path / "state")},
            "follow": {"refs": ["falco-rules:4"], "every": "168h",
                       "falcoversions": "", "rulesfilesDir": str(tmp_path / "rulesfiles"),
                       "pluginsDir": str(tmp_path / "plugins"),
                       "statedir": str(tmp_path / "state")},
        },
        "indexes": [{"name": "falcosecurity", "url": f"file://{index}", "backend": "file"}],
        "registry": {"creds": {"config": str(tmp_path / "docker-config.json")}},
    }
    path = tmp_path / "falcoctl.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_chart_install_args_log_json_lines(chart: Path, tmp_path: Path) -> None:
    # The chart's init container: `artifact install --log-format=json` (the test registry
    # speaks plain HTTP, hence --plain-http); --config after the command, as cobra allows.
    proc = cli("artifact", "install", "--log-format=json", "--config", str(chart),
               "--plain-http")
    assert proc.returncode == 0, proc.stderr
    lines = json_lines(proc.stderr)
    assert lines and all({"level", "msg", "timestamp"} <= set(line) for line in lines)
    assert any("falco-rules:4.10.0" in str(line["msg"]) for line in lines), lines
    assert (tmp_path / "rulesfiles" / "falco_rules.yaml").exists()


def test_chart_follow_args_log_json_lines(chart: Path) -> None:
    proc = subprocess.Popen(
        [str(SCRIPT), "artifact", "follow", "--log-format=json", "--config", str(chart),
         "--plain-http", "--startup-behavior", "immediate"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = eventually(lambda: proc.stderr.readline() if proc.stderr else "", timeout=60)
        assert json.loads(first)["level"] in ("INFO", "WARN", "DEBUG")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_errors_are_json_lines_with_log_format_json(chart: Path) -> None:
    proc = cli("artifact", "install", "nope-not-here", "--config", str(chart),
               "--log-format", "json", "--plain-http")
    assert proc.returncode == 1
    (line,) = json_lines(proc.stderr)
    assert line["level"] == "ERROR" and "nope-not-here" in str(line["msg"])
    usage = cli("artifact", "install", "--bogus", "--log-format=json")
    assert usage.returncode == 2
    (line,) = json_lines(usage.stderr)
    assert line["level"] == "ERROR" and "No such option: --bogus" in str(line["msg"])


def test_global_flags_before_between_and_after(chart: Path) -> None:
    for args in (["--log-level", "warn", "--config", str(chart), "artifact", "list"],
                 ["artifact", "--log-level=warn", "--config", str(chart), "list"],
                 ["artifact", "list", "--config", str(chart), "--log-level", "warn",
                  "--disable-styling"]):
        proc = cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "falco-rules" in proc.stdout
    # the deprecated flag says so, once, in the chosen format
    proc = cli("artifact", "list", "--config", str(chart), "--disable-styling", "--log-format",
               "json")
    (line,) = json_lines(proc.stderr)
    assert line["level"] == "WARN" and "--disable-styling is deprecated" in str(line["msg"])
    # a global flag's name as another option's value is that value, not a flag
    proc = cli("rules", "eval", "proc.name = --debug", "--fields", '{"proc.name": "--debug"}')
    assert proc.returncode == 0 and json.loads(proc.stdout)["result"] is True


def test_piped_tables_keep_whole_cells(chart: Path, tmp_path: Path, registry: Registry) -> None:
    proc = cli("--config", str(chart), "artifact", "list")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout  # no styling into a pipe
    line = proc.stdout.splitlines()[1]
    # falcosecurity's own CLI test matches a listed artifact against a repository regex
    assert re.fullmatch(r"falcosecurity\s+falco-rules\s+rulesfile\s+\S+\s+rules/falco-rules",
                        line), line
    long_url = "file://" + str(tmp_path / ("a" * 150)) + "/index.yaml"
    (tmp_path / ("a" * 150)).mkdir()
    Path(long_url.removeprefix("file://")).write_text("[]\n")
    assert cli("--config", str(chart), "index", "add", "long", long_url).returncode == 0
    listed = cli("--config", str(chart), "index", "list")
    assert any(line.split()[:2] == ["long", long_url] for line in listed.stdout.splitlines())


def test_piped_rules_list_greps_a_long_rule() -> None:
    rules = Path("/work/shared/falco-rules/falco_rules.yaml")
    if not rules.exists():
        pytest.skip("upstream rules: /work/shared/falco-rules/falco_rules.yaml is absent")
    proc = cli("rules", "list", str(rules))
    assert proc.returncode == 0, proc.stderr
    hits = [line for line in proc.stdout.splitlines() if "Terminal shell in container" in line]
    assert len(hits) == 1 and "maturity_stable" in hits[0] and "mitre_execution" in hits[0]


def test_info_tags_sorted_by_version(chart: Path) -> None:
    proc = cli("--config", str(chart), "artifact", "info", "falco-rules", "--plain-http",
               "-o", "json")
    assert proc.returncode == 0, proc.stderr
    (info,) = json.loads(proc.stdout)
    assert info["tags"] == ["4", "4.0", "4.0.0", "4.2", "4.2.0", "4.10", "4.10.0"]


def test_help_shows_no_python_types() -> None:
    for args in (["--help"], ["artifact", "install", "--help"], ["registry", "push", "--help"],
                 ["rules", "list", "--help"], ["artifact", "search", "--help"]):
        proc = cli(*args)
        assert proc.returncode == 0
        assert not re.search(r"<(bool|str|int|float|list\[.*?\]|Path)>", proc.stdout), (
            args, proc.stdout)
        assert "--log-format" in proc.stdout or "Global options" in proc.stdout


def test_each_warning_printed_once_in_one_format(tmp_path: Path) -> None:
    falco_yaml = tmp_path / "falco.yaml"
    rules = tmp_path / "rules.yaml"
    rules.write_text("- list: shells\n  items: [bash]\n")
    falco_yaml.write_text(f"rules_files: [{rules}]\nbogus_key: 1\nwebserver:\n  enabled: false\n")
    for fmt in ("text", "json"):
        proc = cli("run", "-c", str(falco_yaml), "--dry-run", "--log-format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("unknown configuration key 'bogus_key'") == 1, proc.stderr
        if fmt == "json":
            assert all(line["level"] in ("INFO", "WARN") for line in json_lines(proc.stderr))
