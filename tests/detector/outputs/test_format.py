"""Falco's JSON alert shape, as Falcosidekick checks it."""

from __future__ import annotations

import json

from detector.outputs.format import (
    FormatOptions,
    InternalAlert,
    internal_alert,
    iso_utc,
    priority_level,
    priority_name,
    render,
)


def _alert() -> InternalAlert:
    return InternalAlert(time=1470327477881781397, rule="open_from_cat", priority="warning",
                         output="16:17:57.881781397: Warning An open was seen (command=cat)",
                         output_fields={"proc.cmdline": "cat /dev/null", "evt.num": 3},
                         source="syscall", tags=["process", "filesystem"], hostname="h1")


def test_json_alert_has_falcos_keys_sorted() -> None:
    line = render(_alert(), FormatOptions(json_output=True))
    doc = json.loads(line)
    assert list(doc) == sorted(doc)
    assert doc["time"] == "2016-08-04T16:17:57.881781397Z"
    assert doc["priority"] == "Warning"
    assert doc["tags"] == ["filesystem", "process"]
    assert doc["output_fields"]["evt.num"] == 3
    # Falcosidekick's FalcoPayload.Check(): priority, rule, time and non-empty output_fields.
    assert doc["rule"] and doc["time"] and doc["output_fields"]


def test_json_options_drop_properties() -> None:
    doc = json.loads(render(_alert(), FormatOptions(json_output=True, include_output=False,
                                                    include_tags=False, include_message=True)))
    assert "output" not in doc and "tags" not in doc
    assert doc["message"] == "An open was seen (command=cat)"


def test_text_line_is_the_output() -> None:
    assert render(_alert(), FormatOptions()) == _alert().output


def test_internal_alert_shape() -> None:
    a = internal_alert("Falco internal: hot restart failure", "critical",
                       "Falco internal: hot restart failure: boom", {"n": 1})
    assert a.source == "internal" and a.priority == "Critical"
    assert a.output.endswith("Critical Falco internal: hot restart failure: boom (n=1)")
    doc = json.loads(render(a, FormatOptions(json_output=True)))
    assert "tags" not in doc and doc["source"] == "internal"


def test_priorities() -> None:
    assert priority_name("INFO") == "Informational"
    assert priority_level("emergency") == 0 and priority_level("Debug") == 7
    assert iso_utc(0) == "1970-01-01T00:00:00.000000000Z"
