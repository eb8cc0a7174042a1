"""execve's ``flags`` (``exe_flags=%evt.arg.flags`` in the upstream outputs) with Falco's names."""

from __future__ import annotations

import json

import pytest

from detector.events import Event, ThreadInfo
from detector.rules.fields.registry import EVENT
from detector.rules.fields.render import EXECVE_FLAGS
from detector.rules.output import json_alert, parse_format

# PPM_EXE_* bits and their names in libs' execve_flags table.
FALCO = {"EXE_WRITABLE": 1, "EXE_UPPER_LAYER": 2, "EXE_FROM_MEMFD": 4, "EXE_LOWER_LAYER": 8}


def _execve(flags: int, kind: str = "execve") -> Event:
    th = ThreadInfo(tid=7, pid=7, comm="sh", exe="sh", exepath="/bin/busybox", args=["-c", "ls"])
    return Event(num=3, ts=1_700_000_000_000_000_000, type=kind, tid=7, res=0, thread=th,
                 args={"res": 0, "exe": "sh", "flags": flags})


def test_table_is_falcos() -> None:
    assert dict(EXECVE_FLAGS) == FALCO


@pytest.mark.parametrize("flags, shown", [
    (1, "EXE_WRITABLE"),
    (2, "EXE_UPPER_LAYER"),
    (3, "EXE_WRITABLE|EXE_UPPER_LAYER"),
    (1 | 8, "EXE_WRITABLE|EXE_LOWER_LAYER"),
    (4, "EXE_FROM_MEMFD"),
    (15, "EXE_WRITABLE|EXE_UPPER_LAYER|EXE_FROM_MEMFD|EXE_LOWER_LAYER"),
    (0, "0"),  # nothing set: libsinsp prints the number
])
@pytest.mark.parametrize("kind", ["execve", "execveat"])
def test_evt_arg_flags_names_the_bits(flags: int, shown: str, kind: str) -> None:
    event = _execve(flags, kind)
    assert EVENT.bind("evt.arg.flags", None).extract(event) == shown
    line = parse_format("process=%proc.name exe_flags=%evt.arg.flags").render(event)
    assert line == f"process=sh exe_flags={shown}"


def test_json_alert_and_evt_args_carry_the_names() -> None:
    event = _execve(3)
    fields = parse_format("exe_flags=%evt.arg.flags").fields(event)
    assert fields == {"evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER"}
    args = EVENT.bind("evt.args", None).extract(event)
    assert isinstance(args, str) and "flags=3(EXE_WRITABLE|EXE_UPPER_LAYER)" in args
    alert = json.loads(json_alert(hostname="h", output="x", priority=5, rule="r",
                                  source="syscall", tags=(), time_ns=event.ts,
                                  output_fields=fields))
    assert alert["output_fields"]["evt.arg.flags"] == "EXE_WRITABLE|EXE_UPPER_LAYER"


def test_conditions_compare_against_the_names() -> None:
    from detector.rules.eval.codegen import compile_condition
    from detector.rules.lang.parser import parse

    cond = compile_condition(parse("evt.type = execve and evt.arg.flags contains EXE_WRITABLE"))
    assert cond(_execve(1 | 8)) is True
    assert cond(_execve(2)) is False
