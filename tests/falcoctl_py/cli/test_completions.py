"""The committed shell completions are current and complete commands through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from falcoctl_py.cli.completions import FILES, command_tree, generate, main
from tests.realparts import need_binary

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).parent / "falcoctl-py"


def test_committed_completions_are_current(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in FILES.values():
        committed = REPO / "completions" / name
        assert committed.exists(), f"{committed} is missing: run `make completions`"
        assert committed.read_text() == (tmp_path / name).read_text(), (
            f"{committed} is stale: run `make completions`")


def test_generator_lists_the_command_tree(tmp_path: Path) -> None:
    assert main([str(tmp_path / "out")]) == 0
    bash = (tmp_path / "out" / "falcoctl-py.bash").read_text()
    assert "#   falcoctl-py index add" in bash
    assert any(line.startswith("artifact search ") and "--min-score" in line
               for line in command_tree())
    assert (tmp_path / "out" / "_falcoctl-py").read_text().startswith("#compdef falcoctl-py\n")
    assert main([]) == 2


def test_bash_script_completes_subcommands() -> None:
    bash = need_binary("bash")
    script = REPO / "completions" / "falcoctl-py.bash"
    program = (
        f"source {script}; COMP_WORDS=(falcoctl-py index a); COMP_CWORD=2; "
        "_falcoctl_py_completion falcoctl-py; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    env = {**os.environ, "PATH": f"{SCRIPT.parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([bash, "-c", program], capture_output=True, text=True, env=env,
                          check=True, timeout=60)
    assert proc.stdout.split() == ["add"]


def test_zsh_protocol_lists_commands_with_help() -> None:
    env = {**os.environ, "_FALCOCTL_PY_COMPLETE": "complete_zsh",
           "_TYPER_COMPLETE_ARGS": "falcoctl-py artifact "}
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert '"search":"Search the configured indexes' in proc.stdout
    assert '"list":"List the artifacts' in proc.stdout
