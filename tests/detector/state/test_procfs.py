"""Reading /proc: stat lines with odd comms, argv splitting, overlay upper dirs."""

from __future__ import annotations

import os

from detector.state import procfs


def test_stat_comm_with_spaces_and_parens() -> None:
    comm, rest = procfs.parse_stat("42 (a) b (c)) S 1 42 42 34816 0 0 0 0 0 0 0 0 0 0 20 0 1 0 99")
    assert comm == "a) b (c)" and rest[1] == "1" and rest[4] == "34816" and rest[19] == "99"


def test_split_argv() -> None:
    assert procfs.split_argv(b"sh\x00-c\x00echo hi\x00") == ["sh", "-c", "echo hi"]
    assert procfs.split_argv("") == []


def test_read_thread_of_this_process() -> None:
    got = procfs.read_thread(os.getpid(), boot_ns=procfs.boot_time_ns())
    assert got is not None
    th, cgroup = got
    assert th.pid == os.getpid() and th.ppid == os.getppid() and th.cwd == os.getcwd()
    assert th.uid == os.geteuid() and "::" in cgroup
    assert procfs.read_thread(2**22 + 12345) is None


def test_host_root_is_no_overlay_container() -> None:
    # upperdir is only read for containers; on the host it may or may not be overlay: no crash
    value = procfs.overlay_upperdir(os.getpid())
    assert value is None or value.startswith("/")
