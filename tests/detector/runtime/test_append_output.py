"""append_output and static_fields on a running detector: the text line and the JSON alert of
real rules, with the container fields Falco's container plugin suggests."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from detector.config import load_config
from detector.events import ContainerInfo, Event, ThreadInfo
from detector.runtime import Runtime
from tests.detector.runtime_helpers import QueueSource
from tests.eventually import eventually

RULES = """\
- rule: Cat opens
  desc: x
  condition: evt.type = openat and proc.name = cat
  output: cat opened a file (proc=%proc.name)
  priority: WARNING
  tags: [filesystem, test]
- rule: Cat closes
  desc: x
  condition: evt.type = close and proc.name = cat
  output: cat closed (proc=%proc.name container_id=%container.id)
  priority: NOTICE
  tags: [other]
"""


def _event(num: int, type_: str) -> Event:
    ctr = ContainerInfo(id="0123456789ab", full_id="0123456789ab" + "c" * 52, type="podman",
                        name="web-1", image="localhost/busybox:latest")
    return Event(num=num, ts=1_700_000_000_000_000_000 + num, type=type_, tid=7,
                 thread=ThreadInfo(tid=7, pid=7, comm="cat", container=ctr))


def _run(tmp_path: Path, *options: str, json_output: bool = True,
         rules_text: str = RULES) -> list[Any]:
    rules = tmp_path / "r.yaml"
    rules.write_text(rules_text)
    out = tmp_path / "alerts.txt"
    cfg = load_config(overrides=[
        f"rules_files=[{rules}]", "stdout_output.enabled=false", "file_output.enabled=true",
        f"file_output.filename={out}", "file_output.keep_alive=true",
        f"json_output={str(json_output).lower()}", "webserver.enabled=false",
        "engine.kind=nodriver", *options,  # the test's own source, no state tracker
    ], env={"TEAM": "blue"})
    src = QueueSource()
    rt = Runtime(cfg, source=src, watch=False)
    runner = threading.Thread(target=rt.run)
    runner.start()
    try:
        src.push(_event(1, "openat"))
        src.push(_event(2, "close"))
        eventually(lambda: rt.metrics.processed == 2, what="both events processed")
    finally:
        src.end()
        runner.join(30)
    lines = out.read_text().splitlines()
    return [json.loads(line) for line in lines] if json_output else lines


def test_suggested_container_fields_by_default(tmp_path: Path) -> None:
    opened, closed = _run(tmp_path)
    assert opened["output"].endswith(
        "cat opened a file (proc=cat) container_id=0123456789ab container_name=web-1")
    assert opened["output_fields"]["container.id"] == "0123456789ab"
    assert opened["output_fields"]["container.name"] == "web-1"
    # a rule that shows a suggested field itself does not get it twice
    assert closed["output"].count("container_id=") == 1
    assert closed["output"].endswith("container_id=0123456789ab) container_name=web-1")


def test_no_suggestion_when_append_output_is_set_without_it(tmp_path: Path) -> None:
    (opened, _closed) = _run(tmp_path, "append_output=[{extra_output: 'on cpu'}]")
    assert opened["output"].endswith("(proc=cat) on cpu")
    assert "container.id" not in opened["output_fields"]


def test_match_extra_output_extra_fields_and_static_fields(tmp_path: Path) -> None:
    entries = ("append_output=["
               "{suggested_output: true},"
               "{match: {tags: [filesystem]}, extra_output: 'fs=%fd.num'},"
               "{match: {rule: Cat closes}, extra_fields: [evt.type, {team: 'team %proc.name'}]},"
               "{match: {source: k8s_audit}, extra_output: never}]")
    opened, closed = _run(tmp_path, entries, "static_fields={env: prod}")
    assert "fs=" in opened["output"] and "fs=" not in closed["output"]
    assert "never" not in opened["output"] + closed["output"]
    # entries apply in order, each one's text after the previous one's
    # Falco's order of suggested fields: the static ones, then the (container) plugin's
    assert opened["output"].endswith(
        "(proc=cat) static_env=prod container_id=0123456789ab container_name=web-1 fs=<NA>")
    assert opened["output_fields"]["static.env"] == "prod"
    assert closed["output_fields"]["evt.type"] == "close"
    assert closed["output_fields"]["team"] == "team cat"
    assert "team" not in opened["output_fields"]
    assert "team" not in closed["output"]  # extra fields are JSON only


def test_static_fields_are_read_in_conditions(tmp_path: Path) -> None:
    """As Falco (libsinsp's static filtercheck on every source): ``static.*`` in conditions."""
    rules = RULES.replace("evt.type = openat and", "static.env = prod and").replace(
        "evt.type = close and", "static.env = dev and")
    alerts = _run(tmp_path, "static_fields={env: prod}", "append_output=[]",
                  rules_text=rules)
    assert [a["rule"] for a in alerts] == ["Cat opens", "Cat opens"]


def test_text_alerts_carry_the_suggested_fields(tmp_path: Path) -> None:
    opened, _closed = _run(tmp_path, json_output=False)
    assert opened.endswith("container_id=0123456789ab container_name=web-1")


@pytest.mark.parametrize("bad", ["append_output=[{extra_fields: [{a: x}, {a: y}]}]",
                                 "append_output=[{extra_output: '%nope.field'}]"])
def test_bad_append_output_fails_at_load(tmp_path: Path, bad: str) -> None:
    from falcoctl_py.errors import FalcoctlPyError

    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    with pytest.raises(FalcoctlPyError) as err:
        Runtime(load_config(overrides=[f"rules_files=[{rules}]", bad]), watch=False)
    assert "\n" not in err.value.one_line()
