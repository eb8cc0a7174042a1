"""The eBPF source on the running kernel: each event type made by a child, decoded and checked."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detector.bpf.loader import load_tp_btf
from detector.errors import DetectorError
from detector.events import Event
from detector.sources.ebpf import EbpfSource, ebpf_listing
from detector.sources.syscalls import SUPPORTED
from tests.detector.sources.decoders import NAMES, need_compiled
from tests.eventually import eventually
from tests.realparts import need, need_bpf

CHILD = Path(__file__).with_name("syscall_child.py")
pytestmark = [pytest.mark.root, pytest.mark.bpf]


@pytest.fixture(scope="module", params=NAMES)
def source(request: pytest.FixtureRequest) -> Iterator[EbpfSource]:
    """The source on every syscall, once per read loop (pure Python, compiled)."""
    need_bpf()
    if request.param == "compiled":
        need_compiled()
    src = EbpfSource(syscalls=SUPPORTED, decoder=request.param).open()
    assert src.decoder == request.param
    try:
        yield src
    finally:
        src.close()


def _drain(src: EbpfSource) -> None:
    while src.read_raw(timeout=0):
        pass


def _collect(src: EbpfSource, pid: int) -> list[Event]:
    """Events of process ``pid`` (any of its threads) until its procexit."""
    got: list[Event] = []

    def exited() -> bool:
        for ev in src.read(timeout=0.05):
            if ev.ctx is not None and ev.ctx["pid"] == pid:
                got.append(ev)
        return any(ev.type == "procexit" and ev.tid == pid for ev in got)

    eventually(exited, timeout=10, what=f"the procexit of {pid}")
    return got


@pytest.fixture(scope="module")
def child_run(source: EbpfSource, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the syscall child once; its events by type and what it reported."""
    d = tmp_path_factory.mktemp("sc")
    _drain(source)
    env = {"FALCOCTL_PY_MARK": "env-1", **os.environ}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(d)], stdout=subprocess.PIPE, env=env)
    out, _ = proc.communicate(timeout=30)
    facts = json.loads(out)
    events = _collect(source, facts["pid"])
    by_type: dict[str, list[Event]] = {}
    for ev in events:
        by_type.setdefault(ev.type, []).append(ev)
    return {"facts": facts, "by": by_type, "dir": str(d), "events": events}


def one(run: dict[str, Any], etype: str, **match: object) -> Event:
    """The first event of ``etype`` whose args contain ``match``."""
    events: list[Event] = run["by"].get(etype, [])
    for ev in events:
        if all(ev.args.get(k) == v for k, v in match.items()):
            return ev
    seen = [e.args for e in run["by"].get(etype, [])]
    raise AssertionError(f"no {etype} event with {match}; saw {seen}")


def test_events_have_falco_basics(child_run: dict[str, Any]) -> None:
    events = child_run["events"]
    pid = child_run["facts"]["pid"]
    assert events, "no events of the child"
    nums = [e.num for e in events]
    assert nums == sorted(nums) and nums[0] >= 1
    now = time.time_ns()
    for ev in events:
        assert ev.dir == "<" and ev.tid == pid and ev.thread is None and ev.fd is None
        assert now - 60_000_000_000 < ev.ts <= now
        assert ev.ctx is not None and ev.ctx["ppid"] == os.getpid()


def test_open_family(child_run: dict[str, Any]) -> None:
    d, f = child_run["dir"], child_run["facts"]
    ev = one(child_run, "open", name=f"{d}/a.txt")
    assert ev.res == f["open"] and ev.args["fd"] == f["open"]
    assert ev.args["flags"] == os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    assert ev.args["mode"] == 0o640
    ev = one(child_run, "openat", name=f"{d}/a.txt")
    assert ev.args["dirfd"] == -100 and ev.args["fd"] == f["openat"]
    ev = one(child_run, "openat2", name=f"{d}/a.txt")
    assert ev.args["fd"] == f["openat2"] and ev.args["resolve"] == 0x10
    ev = one(child_run, "creat", name=f"{d}/c.txt")
    assert ev.args["mode"] == 0o600 and ev.res == f["creat"]
    ev = one(child_run, "openat", name=f"{d}/missing")
    assert ev.res == -2 and ev.args["fd"] == -2


def test_dup_close(child_run: dict[str, Any]) -> None:
    f = child_run["facts"]
    assert one(child_run, "dup", oldfd=f["openat"]).res == f["dup"]
    assert one(child_run, "dup2", oldfd=f["openat"], newfd=100).res == 100
    ev = one(child_run, "dup3", oldfd=f["openat"], newfd=101)
    assert ev.args["flags"] == os.O_CLOEXEC
    assert one(child_run, "close", fd=101).res == 0


def test_sockets(child_run: dict[str, Any]) -> None:
    f = child_run["facts"]
    ev = one(child_run, "socket", fd=f["server_fd"])
    assert ev.args["domain"] == socket.AF_INET and ev.args["type"] == socket.SOCK_STREAM
    ev = one(child_run, "bind", fd=f["server_fd"])
    assert ev.res == 0 and ev.args["addr"] == "127.0.0.1:0"
    assert one(child_run, "listen", fd=f["server_fd"]).args["backlog"] == 7
    ev = one(child_run, "connect", fd=f["client_fd"])
    assert ev.res == 0 and ev.args["addr"] == f"127.0.0.1:{f['port']}"
    assert ev.args["tuple"] == f"127.0.0.1:{f['client_port']}->127.0.0.1:{f['port']}"
    assert ev.ctx is not None
    assert (ev.ctx["l4proto"], ev.ctx["rport"], ev.ctx["lport"]) == (
        "tcp", f["port"], f["client_port"]
    )
    ev = one(child_run, "accept4", fd=f["accept4"])
    assert ev.args["tuple"] == f"127.0.0.1:{f['client_port']}->127.0.0.1:{f['port']}"
    assert ev.args["flags"] == os.O_CLOEXEC
    assert ev.ctx is not None and ev.ctx["sockaddr"] == {**ev.ctx["sockaddr"],  # type: ignore[dict-item]
                                                         "port": f["client_port"]}
    ev = one(child_run, "sendto", fd=f["client_fd"])
    assert ev.res == 2 and ev.args["size"] == 2 and ev.args["tuple"] is not None
    ev = one(child_run, "socketpair")
    assert [ev.args["fd1"], ev.args["fd2"]] == f["pair"] and ev.args["domain"] == 1
    ev = one(child_run, "pipe2")
    assert [ev.args["fd1"], ev.args["fd2"]] == f["pipe"]


def test_links_renames_dirs(child_run: dict[str, Any]) -> None:
    d = child_run["dir"]
    assert one(child_run, "symlink", target="/etc/shadow").args["linkpath"] == f"{d}/sl1"
    ev = one(child_run, "symlinkat", target="/etc/passwd")
    assert ev.args["linkpath"] == f"{d}/sl2" and ev.args["linkdirfd"] == -100
    assert one(child_run, "link", oldpath=f"{d}/a.txt").args["newpath"] == f"{d}/hl1"
    assert one(child_run, "linkat", oldpath=f"{d}/a.txt").args["newpath"] == f"{d}/hl2"
    assert one(child_run, "rename", oldpath=f"{d}/hl1").args["newpath"] == f"{d}/hl3"
    assert one(child_run, "renameat", oldpath=f"{d}/hl3").args["newdirfd"] == -100
    assert one(child_run, "renameat2", oldpath=f"{d}/hl4").args["flags"] == 1
    assert one(child_run, "unlink", path=f"{d}/hl5").res == 0
    assert one(child_run, "unlinkat", name=f"{d}/hl2").args["dirfd"] == -100
    assert one(child_run, "mkdir", path=f"{d}/dir1").args["mode"] == 0o755
    assert one(child_run, "mkdirat", path=f"{d}/dir2").args["mode"] == 0o700
    assert one(child_run, "rmdir", path=f"{d}/dir1").res == 0
    assert one(child_run, "chmod", filename=f"{d}/a.txt").args["mode"] == 0o4755
    assert one(child_run, "fchmod", mode=0o644).res == 0
    assert one(child_run, "fchmodat", filename=f"{d}/a.txt").args["mode"] == 0o2755
    assert one(child_run, "chdir", path=f"{d}/dir2").res == 0


def test_privileges_and_kernel_objects(child_run: dict[str, Any]) -> None:
    f, d = child_run["facts"], child_run["dir"]
    assert one(child_run, "setuid", uid=0).res == f["setuid"]
    assert one(child_run, "setgid", gid=0).res == f["setgid"]
    assert one(child_run, "setresuid", euid=0).args["ruid"] == 0xFFFFFFFF
    assert one(child_run, "setresgid", sgid=0).res == f["setresgid"]
    ev = one(child_run, "ptrace", request=16)
    assert ev.args["pid"] == 1 and ev.res == f["ptrace"]
    ev = one(child_run, "memfd_create", name="evil")
    assert ev.args["fd"] == f["memfd_create"] and ev.args["flags"] == 1
    ev = one(child_run, "mount", dir=f"{d}/dir2")
    assert (ev.args["dev"], ev.args["type"], ev.res) == ("none", "tmpfs", f["mount"])
    assert one(child_run, "umount2", name=f"{d}/dir2").res == f["umount2"]
    assert one(child_run, "init_module", uargs="opt=1").res == f["init_module"]
    ev = one(child_run, "finit_module", uargs="opt=2")
    assert ev.res == f["finit_module"] and ev.args["fd"] == f["openat"]
    assert one(child_run, "bpf", cmd=5).res == f["bpf"]
    assert one(child_run, "userfaultfd").args["flags"] == os.O_CLOEXEC
    assert one(child_run, "prctl", option=15).res == 0
    assert one(child_run, "unshare", flags=0).res == 0


def test_fork_exec_exit(child_run: dict[str, Any]) -> None:
    f = child_run["facts"]
    ev = next(e for e in child_run["by"]["clone"] + child_run["by"].get("clone3", [])
              if e.res == f["fork_child"])  # fmt: skip
    assert ev.ctx is not None and ev.ctx["child_tid"] == f["fork_child"]
    assert ev.args["ptid"] == os.getpid() and ev.ctx["clone_flags"] & 0xFF == 17  # SIGCHLD
    ev = one(child_run, "execve", filename="/bin/sh")
    assert ev.res == 0 and ev.args["exe"] == "sh"
    assert ev.args["args"] == ["-c", "exit 0", "x1"]
    assert ev.ctx is not None and ev.ctx["comm"] == "sh"
    env = ev.args["env"]
    assert isinstance(env, bytes) and env.split(b"\0")[0] == b"FALCOCTL_PY_MARK=env-1"
    assert ev.ctx["exe_dname"] in ("sh", "dash", "bash") and ev.args["exe_ino"]
    assert ev.ctx["cap_effective"] == ev.args["cap_effective"] != 0  # root
    assert ev.ctx["loginuid"] == int(Path("/proc/self/loginuid").read_text() or -1) & 0xFFFFFFFF
    # the child shares this process's controlling terminal (tty_nr in /proc/PID/stat, 0: none)
    assert ev.ctx["tty"] == int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[4])
    mine = next(line for line in Path("/proc/self/cgroup").read_text().splitlines()
                if line.startswith("0::"))  # fmt: skip
    if mine == "0::/":
        assert "cgroup" not in ev.ctx
    else:
        tail = "/".join(mine[4:].split("/")[-4:])
        assert ev.ctx["cgroup"] == "0::/" + tail
    assert child_run["by"]["procexit"][-1].tid == f["pid"]


def test_set_syscalls_updates_the_kernel_filter(source: EbpfSource, tmp_path: Path) -> None:
    try:
        source.set_syscalls({"unlink", "procexit"})
        _drain(source)
        code = (
            "import os,sys; d=sys.argv[1]; open(d+'/x','w').close(); os.unlink(d+'/x'); "
            "print(os.getpid())"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, check=True
        ).stdout
        got = _collect(source, int(out))
        assert {e.type for e in got} == {"unlink", "procexit"}
    finally:
        source.set_syscalls(SUPPORTED)


def test_counters_and_own_pid_skipped(source: EbpfSource, tmp_path: Path) -> None:
    before = source.counters()
    _drain(source)
    os.close(os.open(tmp_path / "mine", os.O_CREAT | os.O_WRONLY, 0o600))
    time.sleep(0.05)
    mine = [e for e in source.read(timeout=0.05) if e.ctx and e.ctx["pid"] == os.getpid()]
    assert mine == []
    after = source.counters()
    assert after.n_evts >= before.n_evts and after.n_drops >= before.n_drops


def test_ebpf_listing_has_offsets() -> None:
    text = ebpf_listing()
    assert "#define OFF_TASK_REAL_PARENT " in text and "int sys_exit(" in text
    assert '#include "events.h"' not in text


def test_drops_are_counted_exactly_by_category(tmp_path: Path) -> None:
    """A one-page ring buffer nobody reads overflows; every record is received or counted."""
    need_bpf()
    with EbpfSource(syscalls={"openat", "procexit"}, ringbuf_pages=1) as small:
        code = "import os,sys\nfor i in range(300): os.close(os.open(sys.argv[1], os.O_RDONLY))"
        target = tmp_path / "f"
        target.write_text("x")
        subprocess.run([sys.executable, "-c", code, str(target)], check=True)
        small.set_syscalls(set())  # nothing more is offered
        time.sleep(0.05)
        received = 0
        while batch := small.read(timeout=0.05):
            received += len(batch)
        c = small.counters()
    assert c.n_drops > 0
    assert c.n_evts == received + c.n_drops
    assert sum(c.n_drops_buffer.values()) == c.n_drops
    assert c.n_drops_buffer["open_exit"] > 0


def test_events_loop_ends_on_stop(source: EbpfSource) -> None:
    """The loop ends on stop(). Only execve events are kept: under another process's storm a
    list of every event made each check of the wait slower than the storm (a flake)."""
    seen: list[Event] = []

    def run() -> None:
        for ev in source.events(timeout=0.05):
            if ev.type == "execve":
                seen.append(ev)

    loop = threading.Thread(target=run)
    loop.start()
    subprocess.run(["/bin/true"], check=True)
    eventually(lambda: any(e.type == "execve" and e.args.get("filename") == "/bin/true"
                           for e in list(seen)), timeout=10, what="the execve of /bin/true")
    source.stop()
    loop.join(timeout=5)
    assert not loop.is_alive()


def _cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if parts[2] == "cgroup2":
            return Path(parts[1])
    return None


def test_cgroup_path_from_the_kernel(source: EbpfSource) -> None:
    """A process in a cgroup made here: its execve carries the cgroup v2 path's tail."""
    root = _cgroup2_root()
    need(root is not None, "a cgroup2 mount")
    assert root is not None
    outer = root / f"fcpy-test-{os.getpid()}"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    try:
        _drain(source)
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f"echo $$ > {inner}/cgroup.procs && exec /bin/true"],
        )
        proc.wait(timeout=10)
        got = _collect(source, proc.pid)
        ev = next(e for e in got if e.type == "execve" and e.args["filename"] == "/bin/true")
        assert ev.ctx is not None and str(ev.ctx["cgroup"]).endswith(f"/{outer.name}/inner")
    finally:
        inner.rmdir()
        outer.rmdir()


INT80_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    long ret;
    /* ia32 syscall 3 is read; x86-64's 3 is close: this must not become a close event */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(3), "b"(12345), "c"(0), "d"(0) : "memory");
    printf("%d %ld\n", getpid(), ret);
    return 0;
}
"""


def test_ia32_syscalls_are_not_taken_for_x86_64_ones(source: EbpfSource, tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    need(gcc is not None, "gcc")
    assert gcc is not None
    (tmp_path / "int80.c").write_text(INT80_C)
    exe = tmp_path / "int80"
    subprocess.run([gcc, "-static", "-o", str(exe), str(tmp_path / "int80.c")], check=True)
    _drain(source)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    pid, ret = (int(x) for x in out.split())
    assert ret == -9  # EBADF from the ia32 read
    got = _collect(source, pid)
    assert any(e.type == "procexit" for e in got)
    assert any(e.type == "execve" and e.res == 0 for e in got)
    after_exec = [e for e in got if e.ctx is not None and e.ctx["comm"] == "int80"]
    assert not [e for e in after_exec if e.type == "close"]


def test_default_hook_is_per_syscall_tracepoints(source: EbpfSource) -> None:
    # This kernel has BTF and syscall tracepoints: one program per selected syscall's exit.
    assert source.hook_used == "syscall_tp"


def test_raw_tracepoint_fallback_decodes_the_same(tmp_path: Path) -> None:
    """hook='raw_tp' (bpf_probe_read_kernel instead of BTF loads) gives the same fields."""
    need_bpf()
    target = tmp_path / "f"
    target.write_text("x")
    with EbpfSource(syscalls={"openat", "close", "procexit"}, hook="raw_tp") as raw:
        assert raw.hook_used == "raw_tp"
        code = "import os,sys; os.close(os.open(sys.argv[1], os.O_RDONLY)); print(os.getpid())"
        out = subprocess.run(
            [sys.executable, "-c", code, str(target)], capture_output=True, check=True
        ).stdout
        got = _collect(raw, int(out))
    opens = [e for e in got if e.type == "openat" and e.args["name"] == str(target)]
    assert opens, [e.type for e in got]
    ev = opens[0]
    fd, flags = ev.args["fd"], ev.args["flags"]
    assert isinstance(fd, int) and isinstance(flags, int)
    assert fd >= 0 and ev.args["dirfd"] == -100 and flags & 0o3 == 0
    assert ev.ctx is not None and ev.ctx["ppid"] == os.getpid()
    assert str(ev.ctx["comm"]).startswith("python")
    assert any(e.type == "close" and e.args["fd"] == ev.args["fd"] for e in got)


def test_unknown_hook_is_an_error() -> None:
    with pytest.raises(DetectorError, match="unknown hook"):
        EbpfSource(hook="kprobe")


def test_tp_btf_load_error_carries_the_verifier_log(source: EbpfSource) -> None:
    # BTF id 1 is no btf_trace_* typedef: the kernel refuses, and the error says why.
    with pytest.raises(OSError) as err:
        load_tp_btf(source._bpf.module, b"sys_exit", 1)
    assert err.value.errno == errno.EINVAL
    message = err.value.strerror or ""
    assert message.startswith(os.strerror(errno.EINVAL) + ": ")  # the log's tail
    assert len(message) > len(os.strerror(errno.EINVAL)) + 2


REFUSED = """
// Compiles, but the verifier refuses sys_exit: it reads through a null pointer.
int sys_exit(struct bpf_raw_tracepoint_args *ctx) { volatile int *p = 0; return *p; }
int proc_exit(struct bpf_raw_tracepoint_args *ctx) { return 0; }
"""


def test_a_program_the_verifier_refuses_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose verifier refuses the raw hook's program (another kernel, another
    compiler) gets the verifier's words in a DetectorError at open, not an error at attach."""
    need_bpf()
    import detector.sources.ebpf as ebpf

    monkeypatch.setattr(ebpf, "bpf_text", lambda: REFUSED)
    src = EbpfSource(syscalls={"openat"}, hook="raw_tp")
    with pytest.raises(DetectorError, match=r"loading the BPF programs failed: .*sys_exit") as err:
        src.open()
    assert err.value.hint and "driver check" in err.value.hint
    src.close()
