"""Embedded follow: `run` follows an artifact in a real registry and swaps its rules in memory;
a version whose rules do not compile is refused before it is installed."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.config import load_config
from detector.runtime import Runtime
from tests.detector.runtime_helpers import QueueSource, _ev, _rule
from tests.eventually import eventually
from tests.falcoctl_py.follow_helpers import FollowEnv
from tests.realparts import Registry


def _wait(pred: Callable[[], object], limit: float = 30) -> None:
    eventually(pred, timeout=limit, interval=0.05)


def test_follow_updates_rules_in_memory(registry: Registry, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    env = FollowEnv(registry, tmp_path)
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "base.yaml").write_text(_rule("base", "close"))
    env.push("app-rules", "1.0.0", {"app_rules.yaml": _rule("rule_v1").encode()})
    (tmp_path / "falcoctl.yaml").write_text("{}\n")
    follow = {
        "refs": [f"{registry.host}/rulesfiles/app-rules:latest"], "every": "1s",
        "startupBehavior": "immediate", "rulesfilesDir": str(rules_dir),
        "pluginsDir": str(tmp_path / "plugins"), "assetsDir": str(tmp_path / "assets"),
        "stateDir": str(tmp_path / "state"), "plainHTTP": True, "noVerify": True,
        "resolveDeps": True,  # falcoctl.yaml's spellings
        "config": str(tmp_path / "falcoctl.yaml"),
    }
    cfg = load_config(overrides=[
        f"rules_files=[{rules_dir / 'base.yaml'}]", "stdout_output.enabled=false",
        "file_output.enabled=true", f"file_output.filename={tmp_path / 'alerts.json'}",
        "json_output=true", "webserver.enabled=false", f"artifact.follow={json.dumps(follow)}",
    ])
    src = QueueSource()
    rt = Runtime(cfg, source=src, watch=False)  # no file watch: updates come through the hook
    runner = threading.Thread(target=rt.run)
    runner.start()
    try:
        _wait(lambda: rt.ruleset.rule_count == 2)
        installed = rules_dir / "app_rules.yaml"
        assert [p.name for p in rt.ruleset.files] == ["base.yaml", "app_rules.yaml"]
        env.push("app-rules", "1.1.0", {"app_rules.yaml": _rule("rule_v2").encode()})
        _wait(lambda: "rule_v2" in installed.read_text() and rt.metrics.reloads_ok >= 2)
        src.push(_ev(1))
        broken = _rule("rule_v3").replace("evt.type = openat", "evt.type = openat and")
        env.push("app-rules", "1.2.0", {"app_rules.yaml": broken.encode()})
        _wait(lambda: "the detector refused the new files" in caplog.text)
        assert "rule_v2" in installed.read_text()  # refused before installing
        src.push(_ev(2))
    finally:
        src.end()
        runner.join(60)
        env.close()
    alerts = [json.loads(x) for x in (tmp_path / "alerts.json").read_text().splitlines()]
    assert [a["rule"] for a in alerts] == ["rule_v2", "rule_v2"]
