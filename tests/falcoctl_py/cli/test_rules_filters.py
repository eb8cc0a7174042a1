"""``falcoctl-py rules filters``: what each event type keeps, and what each rule contributes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from falcoctl_py.cli.main import app
from tests.falcoctl_py.cli.clirun import run_cli

RULES = """
- list: shells
  items: [bash, sh]
- macro: spawned_process
  condition: (evt.type in (execve, execveat) and evt.dir = <)
- rule: Shell started
  desc: a shell
  condition: spawned_process and proc.name in (shells) and evt.rawres >= 0
  output: shell %proc.name
  priority: WARNING
- rule: Setuid not by sudo
  desc: setuid
  condition: evt.type = setuid and not proc.name in (sudo, su)
  output: setuid %proc.name
  priority: NOTICE
- rule: Any unlink
  desc: unlink
  condition: evt.type = unlink and fd.name startswith /etc
  output: unlink %fd.name
  priority: NOTICE
"""


def _run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["rules", "filters", *args])
    return res.exit_code, res.output


def test_each_type_says_what_it_keeps_and_which_rule_leaves_it_unfiltered(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(RULES)
    code, out = _run([str(f)])
    assert code == 0, out
    assert ("execve: keeps events where (proc.name is one of bash, sh (not checked in the "
            "kernel) and the syscall succeeded)" in out)  # fmt: skip
    assert "setuid: keeps events where (not (proc.name is one of su, sudo" in out
    assert "  - Setuid not by sudo: events where (not (proc.name is one of su, sudo" in out
    assert "unlink: keeps every event" in out
    assert "unfiltered because of: Any unlink" in out
    assert "(state: every event (thread and fd tables))" in out  # execve keeps state


def test_json_output(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(RULES)
    code, out = _run([str(f), "-o", "json"])
    assert code == 0
    by_type = {r["evttype"]: r for r in json.loads(out)}
    assert not by_type["setuid"]["filtered"]  # proc.name is not checked in the kernel yet
    assert not by_type["unlink"]["filtered"] and by_type["execve"]["state"]
    assert by_type["unlink"]["unfiltered_by"] == ["Any unlink"]


def test_a_bad_file_is_one_line_and_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("- rule: x\n  condition: proc.nme = a\n  output: o\n  priority: INFO\n  desc: d\n")
    res = run_cli(capsys, "rules", "filters", str(f))
    assert res.code == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert f"{f}:2:" in res.stderr and "proc.nme" in res.stderr


def test_suffixes_fcntl_commands_and_pipes_in_words(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- rule: Log truncated\n  desc: d\n  condition: evt.type = openat and "
                 "evt.is_open_write = true and fd.filename in (syslog, auth.log)\n"
                 "  output: o\n  priority: WARNING\n")  # fmt: skip
    code, out = _run([str(f)])
    assert code == 0, out
    assert "the path ends with one of /auth.log, /syslog" in out
    assert "path atoms (suffixes too)" in out
    assert ("fcntl: keeps nothing (no rule can match); in the kernel: 2 clauses of 2 command "
            "tests; an F_DUPFD it dropped (of a directory it has the path of) marks its new fd "
            "(state: the commands that make an fd (F_DUPFD, F_DUPFD_CLOEXEC") in out
    assert ("keeps the paths of the directories it drops, judges names relative to them on the "
            "joined path") in out  # openat's
    assert "pipe2: keeps nothing (no rule can match); in the kernel: 0 clauses" in out
    assert "the closes of the two fds of a pipe it dropped go too" in out


def test_socket_atoms_and_tcp_sockets_in_words(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- rule: Outbound TLS\n  desc: d\n  condition: evt.type = connect and "
                 "fd.typechar = 4 and not fd.snet in (10.0.0.0/8) and fd.sport = 443 and "
                 "(evt.rawres >= 0 or evt.res = EINPROGRESS)\n  output: o\n  priority: WARNING\n"
                 "- rule: K8s API\n  desc: d\n  condition: evt.type = connect and "
                 "fd.sip.name = kubernetes.default\n  output: o\n"
                 "  priority: WARNING\n")  # fmt: skip
    code, out = _run([str(f)])
    assert code == 0, out
    assert "not (the remote address is in 10.0.0.0/8)" in out
    assert "the remote port is one of 443" in out and "the result is -EINPROGRESS" in out
    assert "socket atoms (the kernel socket's family, type, protocol, addresses, ports)" in out
    assert "K8s API: nothing: it compares fd.sip.name" in out  # never set here
    assert "(state: sockets other than TCP streams (no rule reads a TCP socket's fd later))" \
        in out


def test_a_rule_reading_tcp_sockets_at_dup_is_named_and_drops_nothing_more(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- rule: Redirect\n  desc: d\n  condition: evt.type = dup2 and fd.type = ipv4\n"
                 "  output: o %fd.name\n  priority: WARNING\n")  # fmt: skip
    code, out = _run([str(f)])
    assert code == 0, out
    assert ("connect: keeps nothing (no rule can match); in the kernel: 2 clauses") in out
    assert ("(no rule reads a TCP socket's fd later, but at dup, from the history the kernel "
            "keeps of the socket: Redirect)") in out  # fmt: skip
