"""A child process that makes each syscall the eBPF source decodes, then prints what it did.

Run as ``python syscall_child.py DIR``; prints one JSON object (fds, pids, paths) on stdout.
Raw ``syscall(2)`` calls keep every call exactly the syscall named.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD = -100
NR = {
    "open": 2, "close": 3, "creat": 85, "openat": 257, "openat2": 437, "dup": 32, "dup2": 33,
    "dup3": 292, "socket": 41, "connect": 42, "accept": 43, "accept4": 288, "bind": 49,
    "listen": 50, "socketpair": 53, "sendto": 44, "symlink": 88, "symlinkat": 266, "link": 86,
    "linkat": 265, "unlink": 87, "unlinkat": 263, "rename": 82, "renameat": 264,
    "renameat2": 316, "mkdir": 83, "mkdirat": 258, "rmdir": 84, "chmod": 90, "fchmod": 91,
    "fchmodat": 268, "setuid": 105, "setgid": 106, "setresuid": 117, "setresgid": 119,
    "ptrace": 101, "memfd_create": 319, "mount": 165, "umount2": 166, "init_module": 175,
    "finit_module": 313, "bpf": 321, "userfaultfd": 323, "prctl": 157, "pipe2": 293,
    "unshare": 272, "chdir": 80,
}  # fmt: skip


def sc(name: str, *args: object) -> int:
    conv = [ctypes.c_char_p(a) if isinstance(a, bytes) else a for a in args]
    ret = int(libc.syscall(NR[name], *conv))
    return -ctypes.get_errno() if ret == -1 else ret


def main() -> None:
    d = sys.argv[1].encode()
    out: dict[str, object] = {"pid": os.getpid()}
    out["open"] = sc("open", d + b"/a.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    out["openat"] = sc("openat", AT_FDCWD, d + b"/a.txt", os.O_RDONLY, 0)
    how = ctypes.create_string_buffer(struct.pack("<QQQ", os.O_RDONLY, 0, 0x10), 24)
    out["openat2"] = sc("openat2", AT_FDCWD, d + b"/a.txt", how, 24)
    out["creat"] = sc("creat", d + b"/c.txt", 0o600)
    out["openat_fail"] = sc("openat", AT_FDCWD, d + b"/missing", os.O_RDONLY, 0)
    fd = out["openat"]
    out["dup"] = sc("dup", fd)
    out["dup2"] = sc("dup2", fd, 100)
    out["dup3"] = sc("dup3", fd, 101, os.O_CLOEXEC)
    out["close"] = sc("close", 101)
    # sockets: a listener, a client that connects to it, an accepted one
    srv = sc("socket", socket.AF_INET, socket.SOCK_STREAM, 0)
    sin = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 0) + socket.inet_aton(
        "127.0.0.1"
    ) + b"\0" * 8
    out["bind"] = sc("bind", srv, ctypes.c_char_p(sin), 16)
    out["listen"] = sc("listen", srv, 7)
    port = socket.socket(fileno=os.dup(srv)).getsockname()[1]
    cli = sc("socket", socket.AF_INET, socket.SOCK_STREAM, 0)
    dst = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(
        "127.0.0.1"
    ) + b"\0" * 8
    out["connect"] = sc("connect", cli, ctypes.c_char_p(dst), 16)
    peer = ctypes.create_string_buffer(128)
    plen = ctypes.c_uint32(128)
    out["accept4"] = sc("accept4", srv, peer, ctypes.byref(plen), os.O_CLOEXEC)
    out["client_fd"], out["server_fd"], out["port"] = cli, srv, port
    out["client_port"] = socket.socket(fileno=os.dup(cli)).getsockname()[1]
    out["sendto"] = sc("sendto", cli, b"hi", 2, 0, None, 0)
    pair = (ctypes.c_int * 2)()
    out["socketpair"] = sc("socketpair", socket.AF_UNIX, socket.SOCK_STREAM, 0, pair)
    out["pair"] = [pair[0], pair[1]]
    fds = (ctypes.c_int * 2)()
    out["pipe2"] = sc("pipe2", fds, os.O_CLOEXEC)
    out["pipe"] = [fds[0], fds[1]]
    # files and directories
    out["symlink"] = sc("symlink", b"/etc/shadow", d + b"/sl1")
    out["symlinkat"] = sc("symlinkat", b"/etc/passwd", AT_FDCWD, d + b"/sl2")
    out["link"] = sc("link", d + b"/a.txt", d + b"/hl1")
    out["linkat"] = sc("linkat", AT_FDCWD, d + b"/a.txt", AT_FDCWD, d + b"/hl2", 0)
    out["rename"] = sc("rename", d + b"/hl1", d + b"/hl3")
    out["renameat"] = sc("renameat", AT_FDCWD, d + b"/hl3", AT_FDCWD, d + b"/hl4")
    out["renameat2"] = sc("renameat2", AT_FDCWD, d + b"/hl4", AT_FDCWD, d + b"/hl5", 1)
    out["unlink"] = sc("unlink", d + b"/hl5")
    out["unlinkat"] = sc("unlinkat", AT_FDCWD, d + b"/hl2", 0)
    out["mkdir"] = sc("mkdir", d + b"/dir1", 0o755)
    out["mkdirat"] = sc("mkdirat", AT_FDCWD, d + b"/dir2", 0o700)
    out["rmdir"] = sc("rmdir", d + b"/dir1")
    out["chmod"] = sc("chmod", d + b"/a.txt", 0o4755)
    out["fchmod"] = sc("fchmod", fd, 0o644)
    out["fchmodat"] = sc("fchmodat", AT_FDCWD, d + b"/a.txt", 0o2755)
    out["chdir"] = sc("chdir", d + b"/dir2")
    # privileges, processes, kernel objects
    out["setgid"] = sc("setgid", 0)
    out["setuid"] = sc("setuid", 0)
    out["setresuid"] = sc("setresuid", -1 & 0xFFFFFFFF, 0, -1 & 0xFFFFFFFF)
    out["setresgid"] = sc("setresgid", 0, 0, 0)
    out["ptrace"] = sc("ptrace", 16, 1, 0, 0)  # PTRACE_ATTACH to init: EPERM or works
    if out["ptrace"] == 0:
        sc("ptrace", 17, 1, 0, 0)  # PTRACE_DETACH
    out["memfd_create"] = sc("memfd_create", b"evil", 1)
    out["mount"] = sc("mount", b"none", d + b"/dir2", b"tmpfs", 0, None)
    out["umount2"] = sc("umount2", d + b"/dir2", 0)
    out["init_module"] = sc("init_module", None, 0, b"opt=1")
    out["finit_module"] = sc("finit_module", fd, b"opt=2", 0)
    out["bpf"] = sc("bpf", 5, None, 0)  # BPF_PROG_LOAD with no attributes: EFAULT/EINVAL
    out["userfaultfd"] = sc("userfaultfd", os.O_CLOEXEC)
    out["prctl"] = sc("prctl", 15, b"renamed", 0, 0, 0)  # PR_SET_NAME
    out["unshare"] = sc("unshare", 0)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    out["fork_child"] = pid
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os.execv("/bin/sh", ["sh", "-c", "exit 0", "x1"])


if __name__ == "__main__":
    main()
