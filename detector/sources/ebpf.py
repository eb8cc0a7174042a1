"""The kernel event source: BCC-loaded tracepoint programs, a ring buffer read in batches.

``EbpfSource`` compiles ``detector/bpf/events.c`` with BTF offsets (``detector/bpf/btf.py``)
as -D flags, attaches a program to the exit tracepoint of each selected syscall
(``detector/bpf/hooks.py``; the raw ``sys_exit`` hook only for selected syscalls without a
tracepoint, loaded as a BTF raw tracepoint through bpf(2), ``detector/bpf/loader.py``) and to
``sched_process_exit``, and writes the selected set into the ``spec`` map (``set_syscalls``
updates the map and the attachments, without a reload). The programs submit records without a
wakeup; the reader (``detector/bpf/ringbuf.py``) polls the ring buffer's producer position and
the records are decoded in place from its mmap'ed pages, many per look, by the compiled loop
(``detector/sources/_lean.c``) or the pure-Python ``detector.sources.decode.decode``
(``detector/sources/fast.py`` picks).

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
* openat/openat2 relative to a directory fd, fchdir, when the kernel filter dropped that
  directory's open: ``dirpath`` (the directory's path, kfilter.h ``kf_dirs``).

Paths are passed as the syscall got them (``name``, ``path``...), with the raw ``dirfd``
(-100 = AT_FDCWD): resolving them against the cwd or a directory fd is the state tracker's job.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from detector.bpf.hooks import Hooks
from detector.bpf.memory import release_compiler
from detector.bpf.programs import RAW_PROGRAMS, load_programs
from detector.bpf.ringbuf import POLL_MAX, POLL_MIN, RingReader
from detector.bpf.rings import RingSet, possible_cpus, ring_layout
from detector.errors import DetectorError
from detector.events import Event
from detector.sources.fast import consumer, merger
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
CPUS_FOR_EACH_BUFFER = 2  # Falco's default: one ring per 2 CPUs (see EbpfSource)
__all__ = ["CTX_KEYS", "HOOKS", "POLL_MAX", "POLL_MIN", "Counters", "EbpfSource", "RingReader",
           "bpf_cflags", "bpf_text", "ebpf_listing"]  # fmt: skip


def bpf_text() -> str:
    """The BPF C program (events.h and kfilter.h inlined, so the text stands alone)."""
    pkg = resources.files("detector.bpf")
    body = pkg.joinpath("events.c").read_text()
    for name in ("events.h", "kfilter.h"):
        body = body.replace(f'#include "{name}"\n', pkg.joinpath(name).read_text())
    return body


def bpf_cflags(*, ringbuf_pages: int = RINGBUF_PAGES, self_tgid: int = 0, rings: int = 1,
               cpus_per_ring: int = 1) -> list[str]:  # fmt: skip
    """-D flags: BTF offsets, the ring buffers (size of each, how many, CPUs per ring) and the
    process to skip (0: none)."""
    from detector.bpf.btf import cflags

    return [*cflags(), f"-DRINGBUF_PAGES={ringbuf_pages}", f"-DSELF_TGID={self_tgid}",
            f"-DN_RINGS={rings}", f"-DCPUS_PER_RING={cpus_per_ring}",
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


HOOKS = ("auto", "syscall_tp", "tp_btf", "raw_tp")


class EbpfSource:
    """Syscall exit events of the running kernel as :class:`Event` objects.

    ``hook`` picks how the programs see syscall exits (``detector/bpf/hooks.py``):
    ``syscall_tp`` (a program on the exit tracepoint of each selected syscall only; the raw
    hook only for selected syscalls without one), ``tp_btf`` or ``raw_tp`` (one program on
    raw_syscalls:sys_exit for every syscall, as a BTF raw tracepoint or through BCC), or
    ``auto`` (syscall_tp, else raw_tp); ``hook_used`` says which one is in use once open.
    ``decoder`` picks the read loop (``detector/sources/fast.py``): ``compiled`` (the C
    extension), ``python``, or ``auto`` (compiled when built); ``self.decoder`` says which.
    ``cpus_for_each_buffer`` is Falco's: 0, one ring buffer of ``ringbuf_pages`` for every
    CPU; N, one per N CPUs (``detector/bpf/rings.py``), read back in timestamp order.
    """

    def __init__(
        self,
        *,
        syscalls: Iterable[str] | None = None,
        ringbuf_pages: int = RINGBUF_PAGES,
        skip_self: bool = True,
        hook: str = "auto",
        release_compiler: bool = True,
        decoder: str = "auto",
        cpus_for_each_buffer: int = CPUS_FOR_EACH_BUFFER,
    ) -> None:
        if hook not in HOOKS:
            raise DetectorError(f"unknown hook {hook!r}", hint=f"use one of {', '.join(HOOKS)}")
        self.decoder, self._consume = consumer(decoder)
        self._merge = merger(self.decoder)
        self.rings, self.cpus_per_ring = ring_layout(cpus_for_each_buffer, possible_cpus())
        self.ringbuf_pages = ringbuf_pages
        self.skip_self = skip_self
        self.hook = hook
        self.hook_used = ""
        self.task_storage = True  # False: the kernel refused it, every fd mark is in kf_marks
        self.release_compiler = release_compiler
        self.rss_before_release = self.rss_after_release = 0
        self._prog_fds: list[int] = []
        self._selected = frozenset(syscalls) if syscalls is not None else frozenset(SUPPORTED)
        self._bpf: Any = None
        self._hooks: Hooks | None = None
        self._ringset: RingSet | None = None
        self._stopping = False
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
        cflags = bpf_cflags(ringbuf_pages=self.ringbuf_pages, self_tgid=self_tgid,
                            rings=self.rings, cpus_per_ring=self.cpus_per_ring)
        progs = load_programs(BPF, bpf_text().encode(), cflags, self.hook)
        self._bpf, self._hooks, self._prog_fds = progs.bpf, progs.hooks, progs.raw_fds
        self.hook_used, self.task_storage = progs.hook_used, progs.task_storage
        size = self.ringbuf_pages * mmap.PAGESIZE
        # the rings go into the array before anything attaches (no record meets an empty slot)
        self._ringset = RingSet.open(self._bpf, size, self.rings, self.cpus_per_ring)
        self._write_specs()
        self.attach()
        self.boot_to_epoch_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        gc.freeze()  # BCC's and the loader's objects: long-lived, never rescanned by the GC
        if self.release_compiler:  # LLVM is idle from now on: give its memory back
            self.rss_before_release, self.rss_after_release = release_compiler()
        return self

    def __enter__(self) -> EbpfSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach everything and free the maps."""
        if self._ringset is not None:
            self._ringset.close()
            self._ringset = None
        if self._hooks is not None:
            self._hooks.close()
            self._hooks = None
        for fd in self._prog_fds:
            os.close(fd)
        self._prog_fds = []
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def attach(self) -> None:
        """Attach the programs the selection needs (``open`` does it)."""
        self._require_hooks().enable()

    def detach(self) -> None:
        """Detach the programs (no cost to any syscall), keeping maps and the ring buffer."""
        self._require_hooks().disable()

    def program_fds(self) -> dict[str, int]:
        """Loaded program name -> fd (for the kernel's run counts, ``loader.prog_stats``)."""
        b = self._require_bpf()
        out = {fn.decode(): fd for (fn, _), fd in zip(RAW_PROGRAMS, self._prog_fds, strict=False)}
        for name, fn in b.funcs.items():
            out.setdefault(name.decode() if isinstance(name, bytes) else name, fn.fd)
        return out

    @property
    def hooks(self) -> Hooks:
        """Where the programs are attached now (per syscall, and whether the raw hook is)."""
        return self._require_hooks()

    def stop(self) -> None:
        """Make a running :meth:`events` loop return (from another thread or a handler)."""
        self._stopping = True

    # -- the selected syscalls -------------------------------------------------------------
    @property
    def selected(self) -> frozenset[str]:
        return self._selected

    def set_syscalls(self, names: Iterable[str]) -> None:
        """Capture exactly ``names`` (event types) from now on: map writes and attachments
        per syscall, no program reload."""
        self._selected = frozenset(names)
        if self._bpf is not None:
            self._write_specs()

    def _write_specs(self) -> None:
        hooks = self._require_hooks()
        hooks.plan(self._selected)
        hooks.attach_new()
        table = self._bpf[b"spec"]
        for name, spec in SPECS.items():
            word = spec_word(spec, enabled=name in self._selected, raw_hook=hooks.raw_hooked(name))
            table[ctypes.c_int(NUMBERS[name])] = ctypes.c_uint32(word)
        table[ctypes.c_int(SPEC_PROCEXIT)] = ctypes.c_uint32(
            spec_word(Spec("procexit"), enabled="procexit" in self._selected)
        )
        hooks.detach_old()

    def set_filters(self, plan: Any) -> None:
        """Kernel filters from a ``detector.kfilter.plan.KernelPlan`` (None: keep every
        event): map writes switched in one word, no program reload (detector/bpf/kfmaps.py)."""
        from detector.bpf.kfmaps import write_plan

        write_plan(self._require_bpf(), plan)

    def filter_stats(self) -> dict[str, tuple[int, int]]:
        """Per syscall: (events the kernel filter saw, events it dropped)."""
        from detector.bpf.kfmaps import stats

        return stats(self._require_bpf())

    # -- reading ------------------------------------------------------------------------------
    def read_raw(self, *, timeout: float = 0.1, limit: int = 4096) -> list[bytes]:
        """Records as bytes (waiting up to ``timeout`` seconds when there are none)."""
        rings = self._require_rings()
        recs = [rec for reader in rings.readers for rec in reader.read(limit)]
        if not recs and timeout > 0:
            rings.wait(timeout)
            recs = [rec for reader in rings.readers for rec in reader.read(limit)]
        return recs

    def read(self, *, timeout: float = 0.1, limit: int = 4096) -> list[Event]:
        """One batch of decoded events (empty after ``timeout`` seconds without any); with
        several ring buffers, in timestamp order, up to ``limit`` in all."""
        rings = self._require_rings()
        if timeout > 0 and not rings.pending():
            rings.wait(timeout)
        # Decoding allocates only acyclic objects: the cyclic GC has nothing to find here, and
        # running it every few hundred events costs about a third of the decoding time.
        was_enabled = gc.isenabled()
        gc.disable()
        try:  # decoded in place, straight from the ring buffer's pages: no copy per record
            if len(rings.readers) == 1:
                out = self._consume(rings.readers[0], limit, self.num + 1, self.boot_to_epoch_ns)
            else:
                out = self._merge(rings, limit, self.num + 1, self.boot_to_epoch_ns)
        finally:
            if was_enabled:
                gc.enable()
        self.num += len(out)
        return out

    def reader_pending(self) -> bool:
        """Whether a ring buffer holds records not read yet."""
        return self._require_rings().pending()

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

    def _require_rings(self) -> RingSet:
        if self._ringset is None:
            raise DetectorError("the eBPF source is not open", hint="call open() first")
        return self._ringset

    @property
    def ring_set(self) -> RingSet:
        """The ring buffers (one per CPU group), once open."""
        return self._require_rings()

    def _require_hooks(self) -> Hooks:
        if self._hooks is None:
            raise DetectorError("the eBPF source is not open", hint="call open() first")
        return self._hooks

    def _require_bpf(self) -> Any:
        if self._bpf is None:
            raise DetectorError("the eBPF source is not open", hint="call open() first")
        return self._bpf
