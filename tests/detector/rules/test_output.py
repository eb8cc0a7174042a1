"""Output formatting: tokens, widths, <NA>, transformers, the text line and the JSON alert."""

from __future__ import annotations

import json

import pytest

from detector.events import Event, FdInfo, ThreadInfo
from detector.rules.output import (
    OutputFormatError,
    iso_time,
    json_alert,
    parse_format,
    rule_formatter,
)

TS = 1470327477881781397  # 2016-08-04T16:17:57.881781397Z


def _event() -> Event:
    parent = ThreadInfo(tid=1, pid=1, comm="systemd", exe="/sbin/init", exepath="/sbin/init")
    th = ThreadInfo(tid=42, pid=42, ppid=1, comm="cat", exe="cat", exepath="/usr/bin/cat",
                    args=["/dev/null"], parent=parent)
    fd = FdInfo(num=3, type="file", name="/dev/null", nameraw="/dev/null")
    return Event(num=7, ts=TS, type="openat", tid=42, res=3,
                 args={"fd": 3, "name": "/dev/null", "flags": 1}, thread=th, fd=fd)


def test_tokens_are_fields_as_written() -> None:
    fmt = parse_format("cmd=%proc.cmdline (%proc.name) gp=%proc.aname[2] f=%evt.arg.flags "
                       "up=%toupper(proc.name) file=%fd.name.")
    assert [t.text for t in fmt.tokens] == [
        "proc.cmdline", "proc.name", "proc.aname[2]", "evt.arg.flags", "toupper(proc.name)",
        "fd.name"]
    text = fmt.render(_event())
    assert text == "cmd=cat /dev/null (cat) gp=<NA> f=O_WRONLY up=CAT file=/dev/null."


def test_width_pads_and_truncates() -> None:
    assert parse_format("[%6proc.name]").render(_event()) == "[cat   ]"
    assert parse_format("[%2proc.name]").render(_event()) == "[ca]"


@pytest.mark.parametrize("fmt, token", [
    ("x=%not_a_real_field", "not_a_real_field"),
    ("x=%proc.nobody", "proc.nobody"),
    ("dangling %", ""),
])
def test_unknown_tokens_fail_at_load(fmt: str, token: str) -> None:
    with pytest.raises(OutputFormatError) as info:
        parse_format(fmt)
    assert info.value.bare_message == f"invalid formatting token {token}"


def test_output_fields_have_native_types() -> None:
    fields = parse_format("%proc.name %proc.pid %fd.num %proc.tty %container.id %user.name"
                          ).fields(_event())
    assert fields == {"proc.name": "cat", "proc.pid": 42, "fd.num": 3, "proc.tty": 0,
                      "container.id": "host", "user.name": None}


def test_falco_json_alert_shape() -> None:
    # The example from falcosecurity/testing (tests/data/outputs/outputs.go).
    fmt = rule_formatter("An open was seen (command=%proc.cmdline)", iso8601=True)
    line, message = fmt.line(_event(), 4)
    assert line == ("2016-08-04T16:17:57.881781397+0000: Warning An open was seen "
                    "(command=cat /dev/null)")
    doc = json_alert(hostname="test-falco-hostname", output=line, priority=4,
                     rule="open_from_cat", source="syscall",
                     tags=["testing", "filesystem", "process"], time_ns=TS,
                     output_fields=fmt.output_fields(_event()))
    assert doc == (
        '{"hostname":"test-falco-hostname","output":"2016-08-04T16:17:57.881781397+0000: '
        'Warning An open was seen (command=cat /dev/null)","priority":"Warning",'
        '"rule":"open_from_cat","source":"syscall","tags":["filesystem","process","testing"],'
        '"time":"2016-08-04T16:17:57.881781397Z","output_fields":{"evt.time.iso8601":'
        '1470327477881781397,"proc.cmdline":"cat /dev/null"}}')
    assert json.loads(doc)["output_fields"]["evt.time.iso8601"] == TS
    assert message == "An open was seen (command=cat /dev/null)"


def test_iso_time_is_utc_with_nanoseconds() -> None:
    assert iso_time(TS) == "2016-08-04T16:17:57.881781397Z"
    assert iso_time(5) == "1970-01-01T00:00:00.000000005Z"
