"""Sockets found in /proc/PID/net/* by inode: only the lines holding the inode are split, and
the answer is the one a split of every line gives (that code is kept here as the reference)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import FdInfo
from detector.state import procfs
from detector.state.sockets import _hex_end, find_inet_socket, set_ends

TABLES = ("tcp", "udp", "tcp6", "udp6", "raw", "raw6")
HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode\n")  # fmt: skip


def reference(proc_root: str, pid: int, inode: int) -> FdInfo | None:
    """The lookup as it was: every line of every table split."""
    for name, proto in (("tcp", "tcp"), ("udp", "udp"), ("tcp6", "tcp"), ("udp6", "udp"),
                        ("raw", "raw"), ("raw6", "raw")):
        text = procfs.read_text(f"{proc_root}/{pid}/net/{name}")
        if not text:
            continue
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) < 10 or parts[9] != str(inode):
                continue
            local, remote = _hex_end(parts[1]), _hex_end(parts[2])
            info = FdInfo(num=-1, type="ipv6" if name.endswith("6") else "ipv4",
                          l4proto=proto, sockfamily="ip")
            listening = parts[3] == "0A"
            info.lip, info.lport = local
            if listening or remote[1] == 0:
                info.sip, info.sport, info.is_server = local[0], local[1], listening
                info.name = f"{local[0]}:{local[1]}"
            else:
                set_ends(info, local, remote, server=False)
                info.connected = True
            return info
    return None


def _end(ip6: bool, addr: int, port: int) -> str:
    return f"{addr:0{32 if ip6 else 8}X}:{port:04X}"


Line = tuple[bool, int, int, int, str, int, int, int]
# numbers close to each other so that one is often the other's prefix, suffix or equal
NUMS = st.sampled_from([0, 1, 12, 123, 1234, 2123, 31234, 12345])
LINE = st.tuples(st.booleans(), st.integers(0, 2**32 - 1), st.integers(0, 65535),
                 st.integers(0, 65535), st.sampled_from(["0A", "01", "06", "07"]), NUMS, NUMS,
                 NUMS)  # fmt: skip


def _line(i: int, ip6: bool, line: Line) -> str:
    _, addr, lport, rport, state, uid, timeout, inode = line
    return (f"{i:4}: {_end(ip6, addr, lport)} {_end(ip6, addr ^ 1, rport)} {state} "
            f"00000000:00000000 00:00000000 00000000 {uid:5} {timeout:8} {inode} 1 "
            f"0000000000000000 100 0 0 10 0\n")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(tables=st.dictionaries(st.sampled_from(TABLES), st.lists(LINE, max_size=6)),
       inode=NUMS)  # fmt: skip
def test_the_lookup_finds_what_splitting_every_line_finds(
        tables: dict[str, list[Line]], inode: int) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory() as root:
        net = Path(root, "7", "net")
        net.mkdir(parents=True)
        for name, lines in tables.items():
            body = "".join(_line(i, name.endswith("6"), ln) for i, ln in enumerate(lines))
            (net / name).write_text(HEADER + body)
        got, want = find_inet_socket(root, 7, inode), reference(root, 7, inode)
        assert repr(got) == repr(want)  # every field of the FdInfo (a dataclass), or both None


def test_real_sockets_are_found_as_before() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp6.bind(("::1", 0))
    try:
        for s in (server, client, conn, udp6):
            inode = os.fstat(s.fileno()).st_ino
            got = find_inet_socket("/proc", os.getpid(), inode)
            assert got is not None and repr(got) == repr(reference("/proc", os.getpid(), inode))
    finally:
        for s in (conn, client, server, udp6):
            s.close()
