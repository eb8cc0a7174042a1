"""Help into a pipe is plain text (no boxes, nothing cut); on a terminal it keeps its boxes."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.falcoctl_py.cli.test_dropin import cli

SCRIPT = Path(sys.executable).with_name("falcoctl-py")
BOX = ("╭", "│", "╰")


@pytest.mark.parametrize("args", [["--help"], ["artifact", "--help"],
                                  ["artifact", "install", "--help"], ["rules", "--help"]])
def test_help_into_a_pipe_is_plain_and_whole(args: list[str]) -> None:
    proc = cli(*args, env={"COLUMNS": "60"})
    assert proc.returncode == 0, proc.stderr
    assert not any(c in proc.stdout for c in BOX), proc.stdout
    assert "…" not in proc.stdout and "..." not in proc.stdout.replace("[ARGS]...", "").replace(
        "[refs]...", "").replace("refs...", "")
    assert proc.stdout.startswith("Usage: falcoctl-py")


def test_command_lists_keep_whole_sentences() -> None:
    text = " ".join(cli("--help").stdout.split())
    assert "Run the detector: falco.yaml, rules, plugins, outputs, hot reload, web endpoints." \
        in text
    rules = " ".join(cli("rules", "--help").stdout.split())
    assert "Print, per event type, what a kernel filter derived from the rules keeps, and why." \
        in rules


def test_help_on_a_terminal_keeps_its_boxes() -> None:
    """A real pseudo-terminal: the rich help with its boxes, as before."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([str(SCRIPT), "artifact", "--help"], stdout=follower,
                                stderr=follower, stdin=subprocess.DEVNULL,
                                env={**os.environ, "COLUMNS": "100"})
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(leader)
    assert "╭" in out.decode("utf-8", "replace")
