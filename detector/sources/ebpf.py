"""The kernel event source: BCC-loaded tracepoint programs, a ring buffer read in batches.

``EbpfSource`` compiles ``detector/bpf/events.c`` with BTF offsets (``detector/bpf/btf.py``)
as -D flags, attaches its programs to the raw tracepoints of raw_syscalls' ``sys_exit`` and
``sched_process_exit``, and writes the selected set into the ``spec`` map (``set_syscalls``
changes it without a reload). Records are read straight from the ring buffer's mmap'ed pages,
many per wakeup, and decoded by the pure ``detector.sources.decode.decode``.

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


def bpf_cflags(*, ringbuf_pages: int = RINGBUF_PAGES) -> list[str]:
    """-D flags: BTF offsets and the ring buffer size."""
    from detector.bpf.btf import cflags

    return [*cflags(), f"-DRINGBUF_PAGES={ringbuf_pages}", "-Wno-macro-redefined"]


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

    def close(self) -> None:
        self._poll.close()
        self._cons.close()
        self._prod.close()


class EbpfSource:
    """Syscall exit events of the running kernel as :class:`Event` objects."""

    def __init__(
        self,
        *,
        syscalls: Iterable[str] | None = None,
        ringbuf_pages: int = RINGBUF_PAGES,
        skip_self: bool = True,
    ) -> None:
        self.ringbuf_pages = ringbuf_pages
        self.skip_self = skip_self
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
        cflags = bpf_cflags(ringbuf_pages=self.ringbuf_pages)
        try:
            self._bpf = BPF(text=bpf_text().encode(), cflags=cflags)
        except Exception as exc:
            raise DetectorError(
                f"loading the BPF programs failed: {exc}",
                hint="run `falcoctl-py driver check` and fix what it reports",
            ) from exc
        b = self._bpf
        if self.skip_self:
            b[b"config"][ctypes.c_int(0)] = ctypes.c_uint32(os.getpid())
        self._write_specs()
        self.attach()
        size = self.ringbuf_pages * mmap.PAGESIZE
        self._reader = RingReader(b[b"events"].map_fd, size)
        self.boot_to_epoch_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        gc.freeze()  # BCC's and the loader's objects: long-lived, never rescanned by the GC
        return self

    def __enter__(self) -> EbpfSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach everything and free the maps."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def attach(self) -> None:
        """Attach the programs to their tracepoints (``open`` does it)."""
        b = self._require_bpf()
        if not self._attached:
            b.attach_raw_tracepoint(tp=b"sys_exit", fn_name=b"sys_exit")
            b.attach_raw_tracepoint(tp=b"sched_process_exit", fn_name=b"proc_exit")
            self._attached = True

    def detach(self) -> None:
        """Detach the programs (no cost to any syscall), keeping maps and the ring buffer."""
        b = self._require_bpf()
        if self._attached:
            b.detach_raw_tracepoint(tp=b"sys_exit")
            b.detach_raw_tracepoint(tp=b"sched_process_exit")
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
        recs = self.read_raw(timeout=timeout, limit=limit)
        if not recs:
            return []
        num = self.num
        off = self.boot_to_epoch_ns
        # Decoding allocates only acyclic objects: the cyclic GC has nothing to find here, and
        # running it every few hundred events costs about a third of the decoding time.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            out = [decode(rec, num + i, off) for i, rec in enumerate(recs, 1)]
        finally:
            if was_enabled:
                gc.enable()
        self.num = num + len(recs)
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
