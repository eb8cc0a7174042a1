"""Falco's Hello World through the whole detector (kernel source, state, upstream rules,
outputs): a terminal shell in a real podman container raises "Terminal shell in container"
with the container fields Falco's container plugin suggests, in the text and the JSON alert."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from detector.config import load_config
from detector.runtime import Runtime
from tests.eventually import eventually
from tests.realparts import Container, PodmanService, need, need_bpf

ROOT = Path(__file__).resolve().parents[3]
UPSTREAM_RULES = Path(
    os.environ.get("FALCOCTL_PY_UPSTREAM_RULES",
                   ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml"))
RULE = "Terminal shell in container"


def _alerts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.podman
@pytest.mark.slow
@pytest.mark.parametrize("json_output", [True, False])
def test_terminal_shell_alert_carries_the_container(
        tmp_path: Path, podman_container: Container, podman_api: PodmanService,
        json_output: bool) -> None:
    need(UPSTREAM_RULES.is_file(), f"upstream falco_rules.yaml at {UPSTREAM_RULES} "
         "(set FALCOCTL_PY_UPSTREAM_RULES)")
    need_bpf()
    from detector.state.tracker import StateTracker

    out = tmp_path / "alerts.txt"
    cfg = load_config(overrides=[
        f"rules_files=[{UPSTREAM_RULES}]", "stdout_output.enabled=false",
        "file_output.enabled=true", f"file_output.filename={out}", "file_output.keep_alive=true",
        f"json_output={str(json_output).lower()}", "webserver.enabled=false",
        "engine.kind=modern_ebpf", "base_syscalls.repair=true",
    ])
    tracker = StateTracker(container_sockets=[("podman", str(podman_api.socket))])
    tracker.scan()
    assert tracker.containers.wait_idle(20)
    rt = Runtime(cfg, tracker=tracker, watch=False)
    runner = threading.Thread(target=rt.run)
    runner.start()
    short = podman_container.id[:12]
    try:
        assert rt.ready.wait(60)
        result = podman_container.exec("sh", "-c", "uptime", tty=True)
        assert result.returncode == 0, result

        def hit() -> Any:  # this container's alert (other work may run containers too)
            if json_output:
                return next((a for a in _alerts(out) if a["rule"] == RULE
                             and a["output_fields"].get("container.id") == short), None)
            text = out.read_text() if out.exists() else ""
            return next((x for x in text.splitlines()
                         if "A shell was spawned" in x and f"container_id={short}" in x), None)

        alert = eventually(hit, timeout=30, interval=0.1, what=f"the {RULE!r} alert")
    finally:
        rt.stop()
        runner.join(60)
    suffix = f"container_id={short} container_name={podman_container.name}"
    if json_output:
        assert alert["output"].endswith(suffix)
        assert alert["output_fields"]["container.id"] == short
        assert alert["output_fields"]["container.name"] == podman_container.name
        assert alert["priority"] == "Notice"
    else:
        assert alert.endswith(suffix)
