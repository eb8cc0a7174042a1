"""``falcoctl-py rules eval``: JSON lines in, one result per line out."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from falcoctl_py.cli.main import app


def _run(args: list[str], stdin: str = "") -> tuple[int, str]:
    res = CliRunner().invoke(app, ["rules", "eval", *args], input=stdin)
    return res.exit_code, res.output


def test_batch_evaluates_each_line() -> None:
    lines = [
        {"condition": "proc.name = bash and fd.num >= 0",
         "fields": {"proc.name": "bash", "fd.num": 3}},
        {"condition": "proc.name != bash", "fields": {}},
        {"condition": "not proc.name in ()", "fields": {}},
        {"condition": "proc.aname in (sshd)", "fields": {"proc.aname": ["bash", "sshd"]}},
        {"condition": "fd.net = 10.0.0.0/8", "fields": {"fd.sip": "10.1.2.3"}},
        {"condition": "evt.buffer bcontains 6869", "fields": {"evt.buffer": {"bytes_hex": "6869"}}},
    ]
    code, out = _run(["--batch"], "\n".join(json.dumps(x) for x in lines) + "\n")
    assert code == 0
    got = [json.loads(x) for x in out.splitlines()]
    assert [g["result"] for g in got] == [True, False, True, True, True, True]
    assert all(g["ok"] and g["error"] is None for g in got)


def test_batch_reports_errors_per_line_and_goes_on() -> None:
    stdin = "\n".join([
        json.dumps({"condition": "proc.nmae = x", "fields": {}}),
        "not json",
        json.dumps({"condition": "fd.num contains 1", "fields": {}}),
        json.dumps({"condition": "proc.name = (", "fields": {}}),
        json.dumps({"condition": "fd.num = 1", "fields": {"fd.num": "abc"}}),
        json.dumps({"condition": "proc.name = x", "fields": {"proc.name": "x"}}),
    ])
    code, out = _run(["--batch"], stdin)
    got = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and len(got) == 6
    assert [g["ok"] for g in got] == [False, False, False, False, False, True]
    assert "did you mean 'proc.name'" in got[0]["error"]
    assert "not supported for numeric filters" in got[2]["error"]
    assert "column" in got[3]["error"]
    assert all(g["result"] is None for g in got[:5]) and got[5]["result"] is True


def test_single_condition_with_fields_option() -> None:
    code, out = _run(["proc.name = bash", "--fields", '{"proc.name": "bash"}'])
    assert code == 0 and json.loads(out) == {"ok": True, "result": True, "error": None}
    code, out = _run(["proc.nope = 1"])
    assert code == 1 and json.loads(out)["ok"] is False
    code, _ = _run(["--fields", "[1]", "proc.name = x"])
    assert code != 0
