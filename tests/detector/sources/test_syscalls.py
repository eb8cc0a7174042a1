"""Falco's adaptive syscall selection (base_syscalls) and the spec words for the kernel."""

from __future__ import annotations

import pytest

from detector.errors import DetectorError
from detector.sources import syscalls as sc


def test_default_is_rules_plus_state() -> None:
    got = sc.select_syscalls({"ptrace", "mkdir", "no_such_event_type"})
    assert {"ptrace", "mkdir"} <= got
    assert got >= sc.STATE_SET
    assert "no_such_event_type" not in got and "procexit" in got


def test_positive_custom_set_replaces_state() -> None:
    got = sc.select_syscalls({"connect"}, custom_set=["execve", "clone"])
    assert got == {"connect", "execve", "clone", "procexit"}


def test_exclusions_are_removed_last() -> None:
    got = sc.select_syscalls({"connect", "openat"}, custom_set=["!openat", "!close"])
    assert "openat" not in got and "close" not in got and "connect" in got
    assert "procexit" in sc.select_syscalls((), custom_set=["!procexit"])


def test_repair_adds_only_the_minimum() -> None:
    got = sc.select_syscalls({"connect"}, repair=True)
    assert got >= sc.REPAIR_ALWAYS
    assert {"socket", "bind", "close"} <= got
    assert "openat" not in got and "memfd_create" not in got
    assert len(got) < len(sc.select_syscalls({"connect"}))


def test_all_selects_everything_decodable() -> None:
    assert sc.select_syscalls((), all_syscalls=True) == sc.SUPPORTED


def test_unknown_custom_name_is_an_error() -> None:
    with pytest.raises(DetectorError, match="nosuchcall"):
        sc.select_syscalls((), custom_set=["nosuchcall"])


def test_spec_words() -> None:
    word = sc.spec_word(sc.SPECS["renameat2"], enabled=True)
    assert (word >> sc.S_STR0) & 7 == 2 and (word >> sc.S_STR1) & 7 == 4
    assert word & sc.F_ENABLED
    assert not sc.spec_word(sc.SPECS["renameat2"], enabled=False) & sc.F_ENABLED
    word = sc.spec_word(sc.SPECS["accept4"], enabled=False)
    assert word & sc.F_SALEN_PTR and word & sc.F_TUPLE_RET
    assert (word >> sc.S_SA) & 7 == 2 and (word >> sc.S_SALEN) & 7 == 3


def test_rules_event_types_are_decodable() -> None:
    """Every event type the three upstream rules files name is one this source produces."""
    named = {
        "accept", "accept4", "bpf", "chmod", "connect", "creat", "dup", "dup2", "dup3", "execve",
        "execveat", "fchmod", "fchmodat", "finit_module", "init_module", "link", "linkat",
        "listen", "mkdir", "mkdirat", "open", "openat", "openat2", "ptrace", "recvfrom",
        "recvmsg", "rename", "renameat", "renameat2", "rmdir", "sendmsg", "sendto", "setns",
        "setuid", "socket", "symlink", "symlinkat", "unlink", "unlinkat", "unshare",
        "userfaultfd",
    }  # fmt: skip
    assert named <= sc.SUPPORTED
