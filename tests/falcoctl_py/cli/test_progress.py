"""Download progress: bars on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import os
import pty
import sys

import pytest

from falcoctl_py.cli._progress import DownloadProgress


def test_plain_lines_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with DownloadProgress() as progress:
        progress.start("k", "falco-rules:5.0.0", 1234)
        progress.advance("k", 1234)
        progress.finish("k", "falco-rules:5.0.0 downloaded")
    assert "downloading falco-rules:5.0.0 (1234 bytes)" in caplog.text
    assert "falco-rules:5.0.0 downloaded" in caplog.text


def test_bars_on_a_terminal() -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child has a terminal on stderr
        try:
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - pytest's capture replaced it
            with DownloadProgress() as progress:
                progress.start("k", "rules[bold]:1.0.0", 2048)
                progress.advance("k", 2048)
            os._exit(0 if progress._bars is not None else 3)
        except BaseException:
            os._exit(4)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = out.decode(errors="replace")
    assert "rules[bold]:1.0.0" in text  # printed without markup
    assert "2.0/2.0 kB" in text
