"""``rules eval --batch``: a bad line is an error result for that line, and the batch goes on."""

from __future__ import annotations

import io
import json

import pytest

from detector.rules.eval.mapping import eval_lines
from tests.falcoctl_py.cli.clirun import run_cli

GOOD = json.dumps({"condition": "proc.name = a", "fields": {"proc.name": "a"}})
BAD_LINES = [
    ("not json", "invalid JSON request"),
    ("[" * 100_000, "JSON nested more than 16 levels deep"),
    ('{"condition": "proc.pid = 1", "fields": {"proc.pid": ' + "9" * 5000 + "}}",
     "JSON number too large"),
    (json.dumps({"condition": "proc.pid = 1", "fields": {"proc.pid": 1e308 * 10}}),
     "field proc.pid is numeric"),
    (json.dumps({"condition": "proc.pid = 1", "fields": {"proc.pid": "1" * 5000}}),
     "field proc.pid is numeric"),
    (json.dumps({"condition": "evt.buffer bcontains 41",
                 "fields": {"evt.buffer": {"bytes_hex": "zz"}}}), "bytes_hex is not"),
    (json.dumps({"condition": "fd.ip = 1.2.3.4", "fields": {"fd.cip": [1, 2]}}),
     "is an IP address"),
    (json.dumps({"condition": "proc.name regex '\\\\d'", "fields": {}}),
     "invalid regular expression"),
    (json.dumps(["condition"]), 'each line must be {"condition"'),
    (json.dumps({"condition": "proc.name = a", "fields": [1]}), '"fields" must be an object'),
]


def test_each_bad_line_is_its_own_error_and_the_batch_goes_on() -> None:
    lines = [GOOD]
    for bad, _ in BAD_LINES:
        lines += [bad, GOOD]
    data = ("\n".join(lines) + "\n").encode() + b"\xff\xfe{}\n" + GOOD.encode() + b"\n"
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")  # as sys.stdin is
    got = list(eval_lines(stream))
    assert len(got) == 2 * len(BAD_LINES) + 3
    assert [r.result for r in got[::2]] == [True] * (len(BAD_LINES) + 2)
    for number, ((_, message), res) in enumerate(zip(BAD_LINES, got[1::2], strict=False), 1):
        assert not res.ok and res.result is None and res.error is not None
        assert res.error.startswith(f"line {2 * number}: ") and message in res.error
    assert got[-2].error == f"line {2 * len(BAD_LINES) + 2}: not UTF-8 text (invalid start " \
                            "byte at byte 0)"


def test_batch_from_the_cli_never_aborts(capsys: pytest.CaptureFixture[str]) -> None:
    stdin = "\n".join([GOOD, *(bad for bad, _ in BAD_LINES), GOOD]) + "\n"
    res = run_cli(capsys, "rules", "eval", "--batch", stdin=stdin)
    assert res.code == 0 and "Error" not in res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(out) == len(BAD_LINES) + 2
    assert out[0]["result"] is True and out[-1]["result"] is True
    assert not any(r["ok"] for r in out[1:-1])
