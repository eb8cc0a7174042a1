"""The kernel event source: BCC-loaded tracepoint programs, a ring buffer read in batches.

``EbpfSource`` compiles ``detector/bpf/events.c`` with BTF offsets (``detector/bpf/btf.py``)
as -D flags, attaches its programs to the raw tracepoints of raw_syscalls' ``sys_exit`` and
``sched_process_exit`` (as BTF raw tracepoints, loaded through bpf(2) since BCC 0.26 cannot,
else as plain raw tracepoints through BCC), and writes the selected set into the ``spec`` map
(``set_syscalls`` changes it without a reload). The programs submit records without a wakeup;
the reader polls the ring buffer's producer position and decodes the records in place from its
mmap'ed pages, many per look, with the pure ``detector.sources.decode.decode``.

CTX_KEYS documents ``Event.ctx``, what the state tracker gets beside Falco's parameters:

* every event: ``tid``, ``pid`` (tgid), ``ppid`` (task->real_parent->tgid), ``comm`` (task
  comm at exit: after a successful execve, the new one), ``uid``/``gid`` (real ids).
* execve/execveat/clone/clone3/fork/vfork/capset (process context): ``loginuid`` (4294967295
  when unset), ``sid`` (audit session id), ``tty`` (new_encode_dev of the controlling
  terminal, 0 for none), ``vpid`` (pid in the task's own pid namespace), ``euid``, ``egid``,
  ``cap_inheritable``/``cap_permitted``/``cap_effective`` (bitmasks), ``exe_ino``,
  ``exe_ino_ctime``/``exe_ino_mtime`` (ns, second precision), ``exe_dev``, ``exe_overlay``
  (the executable is on overlayfs), ``exe_upper_layer`` (its overlay inode has an upper
  dentry), ``exe_dname`` (the executable's dentry name), ``exe_from_memfd`` (``exe_dname``
  starts with ``memfd:``), ``exe_flags`` (Falco's PPM_EXE_* bits), ``cgroup_id`` (cgroup v2 id),
  ``cgroup`` (``0::/a/b/c/d``: up to the last four components of the cgroup v2 path, in
  /proc/PID/cgroup's form; absent in the root cgroup).
* execve/execveat success: ``argv`` (the new image's argv from mm); execveat: ``filename``
  and ``dirfd`` (its file name is relative to dirfd).
* clone family: ``clone_flags`` (raw kernel CLONE_* flags), ``child_tid`` (in the parent),
  ``child_pid`` (in the parent, when not CLONE_THREAD).
* accept/accept4: ``listen_fd`` (the listening socket's fd).
* socket events with a kernel socket (connect/accept/accept4/sendto/sendmsg/recvfrom/
  recvmsg; IPv4/IPv6 only): ``sock_family`` (ipv4|ipv6), ``l4proto`` (tcp|udp|icmp|raw),
  ``lip``/``lport`` (this end), ``rip``/``rport`` (the peer).
* events with a sockaddr argument (connect, bind, accept peers, sendto/sendmsg targets):
  ``sockaddr`` = {family: ipv4|ipv6|unix|<n>, ip, port} or {family: unix, path}.

Paths are passed as the syscall got them (``name``, ``path``...), with the raw ``dirfd``
(-100 = AT_FDCWD): resolving them against the cwd or a directory fd is the state tracker's job.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import select
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from detector.errors import DetectorError
from detector.events import Event
from detector.sources.decode import decode
from detector.sources.syscall_nrs import NUMBERS
from detector.sources.syscalls import (
    DROP_CATEGORIES,
    SPEC_PROCEXIT,
    SPECS,
    SUPPORTED,
    Spec,
    spec_word,
)

CTX_KEYS = __doc__
RINGBUF_PAGES = 2048  # 8 MiB with 4 KiB pages
POLL_MIN = 0.0005  # seconds between looks at an empty ring buffer, growing to POLL_MAX
POLL_MAX = 0.004  # 8 MiB at the fastest storm seen here (~0.5 GB/s) takes ~16 ms to fill
_BUSY = 1 << 31
_DISCARD = 1 << 30
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def bpf_text() -> str:
    """The BPF C program (events.h inlined, so the text stands alone)."""
    pkg = resources.files("detector.bpf")
    header = pkg.joinpath("events.h").read_text()
    body = pkg.joinpath("events.c").read_text()
    return body.replace('#include "events.h"\n', header)


def bpf_cflags(*, ringbuf_pages: int = RINGBUF_PAGES, self_tgid: int = 0) -> list[str]:
    """-D flags: BTF offsets, the ring buffer size and the process to skip (0: none)."""
    from detector.bpf.btf import cflags

    return [*cflags(), f"-DRINGBUF_PAGES={ringbuf_pages}", f"-DSELF_TGID={self_tgid}",
            "-Wno-macro-redefined"]  # fmt: skip


def ebpf_listing(*, ringbuf_pages: int = RINGBUF_PAGES) -> str:
    """The C text with its -D flags as #defines, as BCC tools print it with --ebpf."""
    defines = []
    for flag in bpf_cflags(ringbuf_pages=ringbuf_pages):
        if flag.startswith("-D"):
            name, _, value = flag[2:].partition("=")
            defines.append(f"#define {name} {value}")
    return "\n".join(defines) + "\n\n" + bpf_text()


@dataclass
class Counters:
    """Kernel-side counts: records offered to the ring buffer and those dropped (full).

    ``n_drops_buffer`` splits the drops by Falco's categories (``clone_fork_exit``,
    ``execve_exit``, ``connect_exit``, ``open_exit``, ``dir_file_exit``,
    ``other_interest_exit``, ``close_exit``, ``proc_exit``).
    """

    n_evts: int
    n_drops: int
    n_drops_buffer: dict[str, int] = field(default_factory=dict)


class RingReader:
    """A consumer of a BPF ring buffer map through its mmap'ed pages (as libbpf does)."""

    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._prod = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        self._data = page
        self._poll = select.epoll()
        self._poll.register(map_fd, select.EPOLLIN)

    def pending(self) -> bool:
        """Whether the kernel has written records not read yet."""
        return bool(_U64.unpack_from(self._prod, 0)[0] != _U64.unpack_from(self._cons, 0)[0])

    def wait(self, timeout: float) -> None:
        """Sleep until there is data (or ``timeout`` seconds), polling with a growing delay.

        The programs submit without a wakeup (a wakeup costs the traced process an irq_work
        and a cross-CPU wake per record when the reader keeps up), so the reader looks at the
        producer position every POLL_MIN..POLL_MAX seconds; the epoll fd still ends a sleep
        early for the records that do ask for a wakeup.
        """
        deadline = time.monotonic() + timeout
        delay = POLL_MIN
        while not self.pending():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._poll.poll(min(delay, left))
            delay = min(delay * 2, POLL_MAX)

    def read(self, limit: int = 4096) -> list[bytes]:
        """Up to ``limit`` records (copied out), releasing their space to the kernel."""
        prod = self._prod
        cons_pos = _U64.unpack_from(self._cons, 0)[0]
        prod_pos = _U64.unpack_from(prod, 0)[0]
        out: list[bytes] = []
        append = out.append
        base, mask = self._data, self.mask
        u32 = _U32.unpack_from
        while cons_pos < prod_pos and len(out) < limit:
            off = base + (cons_pos & mask)
            ln = u32(prod, off)[0]
            if ln & _BUSY:
                break
            size = ln & ~(_BUSY | _DISCARD)
            if not ln & _DISCARD:
                append(prod[off + 8 : off + 8 + size])
            cons_pos += (size + 8 + 7) & ~7
        if out or cons_pos != _U64.unpack_from(self._cons, 0)[0]:
            _U64.pack_into(self._cons, 0, cons_pos)
        return out

    def decode(self, first: int, boot_to_epoch_ns: int, limit: int = 4096) -> list[Event]:
        """Up to ``limit`` records decoded in place (numbered from ``first``), then released."""
        prod = self._prod
        cons_pos = _U64.unpack_from(self._cons, 0)[0]
        prod_pos = _U64.unpack_from(prod, 0)[0]
        out: list[Event] = []
        append = out.append
        base, mask = self._data, self.mask
        u32 = _U32.unpack_from
        n = first
        while cons_pos < prod_pos and n - first < limit:
            off = base + (cons_pos & mask)
            ln = u32(prod, off)[0]
            if ln & _BUSY:
                break
            size = ln & ~(_BUSY | _DISCARD)
            if not ln & _DISCARD:  # decode copies what it keeps: the space can go back
                append(decode(prod, n, boot_to_epoch_ns, off + 8))
                n += 1
            cons_pos += (size + 8 + 7) & ~7
        if out or cons_pos != _U64.unpack_from(self._cons, 0)[0]:
            _U64.pack_into(self._cons, 0, cons_pos)
        return out

    def close(self) -> None:
        self._poll.close()
        self._cons.close()
        self._prod.close()


# The bpf(2) syscall, for what BCC 0.26 cannot do: load a BTF raw tracepoint (tp_btf) program.
_SYS_BPF = 321  # x86-64
_BPF_PROG_LOAD, _BPF_RAW_TRACEPOINT_OPEN = 5, 17
_BPF_PROG_TYPE_TRACING, _BPF_TRACE_RAW_TP = 26, 23
_PROG_LOAD_ATTR = struct.Struct("<IIQQIIQII16sII")  # prog_type .. expected_attach_type
_ATTACH_BTF_ID_AT = 108  # offsetof(union bpf_attr, attach_btf_id)
_libc: Any = None


def _bpf_syscall(cmd: int, attr: Any, size: int) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    fd = int(_libc.syscall(_SYS_BPF, cmd, attr, size))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def load_tp_btf(module: Any, name: bytes, btf_id: int) -> int:
    """Load BCC-compiled function ``name`` as a tp_btf program for BTF id ``btf_id``; its fd.

    BCC has already compiled it and put the map fds in its instructions; the verifier's log
    is read only when loading fails.
    """
    from bcc import lib

    insns = lib.bpf_function_start(module, name)
    size = lib.bpf_function_size(module, name)
    if not insns or not size:
        raise OSError(0, f"no BPF function {name.decode()}")
    lic = ctypes.create_string_buffer(lib.bpf_module_license(module) or b"GPL")
    for log_size in (0, 1 << 22):
        log = ctypes.create_string_buffer(max(log_size, 1))
        attr = ctypes.create_string_buffer(144)
        _PROG_LOAD_ATTR.pack_into(
            attr, 0, _BPF_PROG_TYPE_TRACING, size // 8, insns, ctypes.addressof(lic),
            1 if log_size else 0, log_size, ctypes.addressof(log) if log_size else 0, 0, 0,
            name[:15], 0, _BPF_TRACE_RAW_TP,
        )  # fmt: skip
        struct.pack_into("<I", attr, _ATTACH_BTF_ID_AT, btf_id)
        try:
            return _bpf_syscall(_BPF_PROG_LOAD, attr, len(attr))
        except OSError as exc:
            if log_size:
                tail = log.value.decode("utf-8", "replace").strip().splitlines()[-3:]
                raise OSError(exc.errno, f"{exc.strerror}: {' / '.join(tail)}") from None
    raise AssertionError("unreachable")


def attach_tp_btf(prog_fd: int) -> int:
    """Attach a loaded tp_btf program (its tracepoint is in its BTF id); the link's fd."""
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("<QI", attr, 0, 0, prog_fd)
    return _bpf_syscall(_BPF_RAW_TRACEPOINT_OPEN, attr, len(attr))


# (function, tracepoint) pairs of events.c
_PROGRAMS = ((b"sys_exit", "sys_exit"), (b"proc_exit", "sched_process_exit"))
HOOKS = ("auto", "tp_btf", "raw_tp")


class EbpfSource:
    """Syscall exit events of the running kernel as :class:`Event` objects.

    ``hook`` picks how the programs attach: ``tp_btf`` (BTF raw tracepoints: the registers
    and task fields on the hot path are plain loads), ``raw_tp`` (plain raw tracepoints through
    BCC, reads through bpf_probe_read_kernel), or ``auto`` (tp_btf, else raw_tp); ``hook_used``
    says which one is in use once open.
    """

    def __init__(
        self,
        *,
        syscalls: Iterable[str] | None = None,
        ringbuf_pages: int = RINGBUF_PAGES,
        skip_self: bool = True,
        hook: str = "auto",
    ) -> None:
        if hook not in HOOKS:
            raise DetectorError(f"unknown hook {hook!r}", hint=f"use one of {', '.join(HOOKS)}")
        self.ringbuf_pages = ringbuf_pages
        self.skip_self = skip_self
        self.hook = hook
        self.hook_used = ""
        self._prog_fds: list[int] = []
        self._links: list[int] = []
        self._selected = frozenset(syscalls) if syscalls is not None else frozenset(SUPPORTED)
        self._bpf: Any = None
        self._reader: RingReader | None = None
        self._stopping = False
        self._attached = False
        self.num = 0
        self.boot_to_epoch_ns = 0

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> EbpfSource:
        """Compile, load and attach the programs; start capturing the selected syscalls."""
        try:
            from bcc import BPF
        except Exception as exc:
            raise DetectorError(
                f"BCC is not importable: {exc}",
                hint="run `falcoctl-py driver install` (Debian's python3-bpfcc)",
            ) from exc
        self_tgid = os.getpid() if self.skip_self else 0
        cflags = bpf_cflags(ringbuf_pages=self.ringbuf_pages, self_tgid=self_tgid)
        text = bpf_text().encode()
        failure = ""
        if self.hook in ("auto", "tp_btf"):
            try:
                self._open_tp_btf(BPF, text, cflags)
            except Exception as exc:  # an older kernel or BCC: plain raw tracepoints
                self.close()
                failure = f"tp_btf: {exc}"
                if self.hook == "tp_btf":
                    raise DetectorError(
                        f"loading the BPF programs as BTF raw tracepoints failed: {exc}",
                        hint="use hook='raw_tp', or run `falcoctl-py driver check`",
                    ) from exc
        if self._bpf is None:
            try:
                self._bpf = BPF(text=text, cflags=cflags)
            except Exception as exc:
                raise DetectorError(
                    f"loading the BPF programs failed: {exc}" + (f" ({failure})" * bool(failure)),
                    hint="run `falcoctl-py driver check` and fix what it reports",
                ) from exc
            self.hook_used = "raw_tp"
        b = self._bpf
        self._write_specs()
        self.attach()
        size = self.ringbuf_pages * mmap.PAGESIZE
        self._reader = RingReader(b[b"events"].map_fd, size)
        self.boot_to_epoch_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        gc.freeze()  # BCC's and the loader's objects: long-lived, never rescanned by the GC
        return self

    def _open_tp_btf(self, bpf_cls: Any, text: bytes, cflags: list[str]) -> None:
        from detector.bpf.btf import load

        btf = load()
        ids = [btf.tracepoint_id(tp) for _, tp in _PROGRAMS]
        if None in ids:
            raise OSError(0, "no btf_trace_* types in the kernel's BTF")
        self._bpf = bpf_cls(text=text, cflags=[*cflags, "-DTP_BTF"])
        for (fn, _), btf_id in zip(_PROGRAMS, ids, strict=True):
            self._prog_fds.append(load_tp_btf(self._bpf.module, fn, btf_id or 0))
        self.hook_used = "tp_btf"

    def __enter__(self) -> EbpfSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach everything and free the maps."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for fd in self._links + self._prog_fds:
            os.close(fd)
        self._links, self._prog_fds = [], []
        self._attached = False
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def attach(self) -> None:
        """Attach the programs to their tracepoints (``open`` does it)."""
        b = self._require_bpf()
        if self._attached:
            return
        if self._prog_fds:
            for fd in self._prog_fds:
                self._links.append(attach_tp_btf(fd))
        else:
            for fn, tp in _PROGRAMS:
                b.attach_raw_tracepoint(tp=tp.encode(), fn_name=fn)
        self._attached = True

    def detach(self) -> None:
        """Detach the programs (no cost to any syscall), keeping maps and the ring buffer."""
        b = self._require_bpf()
        if not self._attached:
            return
        if self._prog_fds:
            for fd in self._links:
                os.close(fd)
            self._links = []
        else:
            for _, tp in _PROGRAMS:
                b.detach_raw_tracepoint(tp=tp.encode())
        self._attached = False

    def stop(self) -> None:
        """Make a running :meth:`events` loop return (from another thread or a handler)."""
        self._stopping = True

    # -- the selected syscalls -------------------------------------------------------------
    @property
    def selected(self) -> frozenset[str]:
        return self._selected

    def set_syscalls(self, names: Iterable[str]) -> None:
        """Capture exactly ``names`` (event types) from now on: a map update, no reload."""
        self._selected = frozenset(names)
        if self._bpf is not None:
            self._write_specs()

    def _write_specs(self) -> None:
        table = self._bpf[b"spec"]
        for name, spec in SPECS.items():
            table[ctypes.c_int(NUMBERS[name])] = ctypes.c_uint32(
                spec_word(spec, enabled=name in self._selected)
            )
        table[ctypes.c_int(SPEC_PROCEXIT)] = ctypes.c_uint32(
            spec_word(Spec("procexit"), enabled="procexit" in self._selected)
        )

    # -- reading ------------------------------------------------------------------------------
    def read_raw(self, *, timeout: float = 0.1, limit: int = 4096) -> list[bytes]:
        """Records as bytes (waiting up to ``timeout`` seconds when there are none)."""
        reader = self._require()
        recs = reader.read(limit)
        if not recs and timeout > 0:
            reader.wait(timeout)
            recs = reader.read(limit)
        return recs

    def read(self, *, timeout: float = 0.1, limit: int = 4096) -> list[Event]:
        """One batch of decoded events (empty after ``timeout`` seconds without any)."""
        reader = self._require()
        if timeout > 0 and not reader.pending():
            reader.wait(timeout)
        # Decoding allocates only acyclic objects: the cyclic GC has nothing to find here, and
        # running it every few hundred events costs about a third of the decoding time.
        was_enabled = gc.isenabled()
        gc.disable()
        try:  # decoded in place, straight from the ring buffer's pages: no copy per record
            out = reader.decode(self.num + 1, self.boot_to_epoch_ns, limit)
        finally:
            if was_enabled:
                gc.enable()
        self.num += len(out)
        return out

    def events(
        self, *, timeout: float = 0.1, until: Callable[[], bool] | None = None
    ) -> Iterator[Event]:
        """Events until :meth:`stop` is called or ``until()`` turns true; ends cleanly."""
        try:
            while not self._stopping and not (until is not None and until()):
                yield from self.read(timeout=timeout)
        finally:
            self._stopping = False

    def counters(self) -> Counters:
        """Records offered and dropped in the kernel, summed over CPUs (exact)."""
        table = self._require_bpf()[b"counters"]
        offered = sum(int(v) for v in table[ctypes.c_int(0)])
        drops = sum(int(v) for v in table[ctypes.c_int(1)])
        by_cat = {
            name: sum(int(v) for v in table[ctypes.c_int(2 + i)])
            for i, name in enumerate(DROP_CATEGORIES)
        }
        return Counters(n_evts=offered, n_drops=drops, n_drops_buffer=by_cat)

    def _require(self) -> RingReader:
        if self._reader is None:
            raise DetectorError("the eBPF source is not open", hint="call open() first")
        return self._reader

    def _require_bpf(self) -> Any:
        if self._bpf is None:
            raise DetectorError("the eBPF source is not open", hint="call open() first")
        return self._bpf
