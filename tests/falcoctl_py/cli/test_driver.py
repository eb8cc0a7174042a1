"""``falcoctl-py driver`` commands as users run them."""

from __future__ import annotations

import json
import os

import pytest

from tests.falcoctl_py.cli.clirun import run_cli
from tests.realparts import need_bpf


def test_driver_check_passes_on_a_prepared_machine(capsys: pytest.CaptureFixture[str]) -> None:
    need_bpf()
    run = run_cli(capsys, "driver", "check")
    assert run.code == 0, run.stdout + run.stderr
    for name in ("privileges", "bpf", "btf", "tracefs", "kernel-headers", "bcc"):
        assert name in run.stdout
    assert "FAILED" not in run.stdout
    run = run_cli(capsys, "driver", "check", "-o", "json")
    data = json.loads(run.stdout)
    assert data["ok"] is True and len(data["checks"]) == 6


def test_driver_install_twice_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    need_bpf()
    run = run_cli(capsys, "driver", "install", "--no-packages")
    assert run.code == 0 and "already prepared" in run.stderr


def test_driver_printenv(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_cli(capsys, "driver", "printenv")
    assert run.code == 0
    assert f"KERNEL_RELEASE={os.uname().release}" in run.stdout.splitlines()
    run = run_cli(capsys, "driver", "printenv", "-o", "json")
    assert json.loads(run.stdout)["DRIVER"] == "ebpf-bcc"



def test_driver_printenv_ebpf_prints_the_program(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_cli(capsys, "driver", "printenv", "--ebpf")
    assert run.code == 0
    assert "#define OFF_TASK_REAL_PARENT " in run.stdout and "BPF_RINGBUF_OUTPUT" in run.stdout
