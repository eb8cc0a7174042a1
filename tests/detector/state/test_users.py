"""Users and groups read from a root's own /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from pathlib import Path

from detector.state.users import UserTable, parse_group, parse_passwd


def test_parse_skips_bad_lines() -> None:
    users = parse_passwd("root:x:0:0:root:/root:/bin/bash\n# comment\nbad:x:zz:0::/:/bin/sh\n")
    assert list(users) == [0] and users[0].homedir == "/root" and users[0].shell == "/bin/bash"
    assert parse_group("wheel:x:10:a,b\n")[10].name == "wheel"


def test_host_root_is_reread_when_passwd_changes(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("alice:x:1000:1000::/home/alice:/bin/sh\n")
    (etc / "group").write_text("staff:x:50:\n")
    table = UserTable(host_root=str(tmp_path))
    assert table.user("host", 1, 1000).name == "alice"
    assert table.group("host", 1, 50).name == "staff"
    assert table.user("host", 1, 1001).name is None
    (etc / "passwd").write_text("bob:x:1000:1000::/home/bob:/bin/sh\n")
    os.utime(etc / "passwd", (1, 1))
    table._roots["host"].checked = 0.0  # skip the once-a-second pacing
    assert table.user("host", 1, 1000).name == "bob"


def test_a_process_root_is_read_through_proc() -> None:
    table = UserTable()
    assert table.user("self-root", os.getpid(), 0).name == "root"


def test_a_container_root_that_is_not_a_file_is_not_read(tmp_path: Path) -> None:
    """A FIFO would block the detector and /dev/zero never end: both give unknown users."""
    etc = tmp_path / "etc"
    etc.mkdir()
    os.mkfifo(etc / "passwd")
    (etc / "group").symlink_to("/dev/zero")
    table = UserTable(host_root=str(tmp_path))
    assert table.user("host", 1, 0).name is None
    assert table.group("host", 1, 0).name is None


def test_a_huge_passwd_is_read_up_to_the_limit(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    line = "u{0}:x:{0}:{0}::/home/u{0}:/bin/sh\n"
    text = "".join(line.format(i) for i in range(100_000))  # about 3.4 MB
    (etc / "passwd").write_text(text)
    table = UserTable(host_root=str(tmp_path))
    assert table.user("host", 1, 10).name == "u10"
    assert table.user("host", 1, 99_999).name is None  # past MAX_FILE_BYTES
    assert len(table._roots["host"].users) < 40_000
