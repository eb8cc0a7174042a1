"""Replaying capture files: errors that say where, forward compatibility."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.sources.replay import ReplaySource
from falcoctl_py.errors import LocatedError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty capture"),
        ('{"k": "e"}\n', "no header"),
        ('{"k":"h","format":"falcoctl-py-capture","version":99}\n', "newer"),
        ('{"k":"h","format":"falcoctl-py-capture","version":1}\nnot json\n', ":2: not a JSON"),
        ('{"k":"h","format":"falcoctl-py-capture","version":1}\n{"k":"e","ts":1}\n', ":2: bad"),
    ],
)
def test_bad_files_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(LocatedError, match=message):
        list(ReplaySource(str(path)))


def test_unknown_records_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"k":"h","format":"falcoctl-py-capture","version":1}\n'
                    '{"k":"future","x":1}\n'
                    '{"k":"e","num":1,"ts":5,"type":"read","tid":3,"res":0,"new":1}\n')
    (e,) = list(ReplaySource(str(path)))
    assert (e.num, e.type, e.thread) == (1, "read", None)
