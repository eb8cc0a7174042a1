"""Writing a :class:`~detector.kfilter.plan.KernelPlan` into the kernel filter maps of events.c.

Two slots: the plan goes into the slot no event reads (its ``kf_sys`` entries and its trie
keys, which start with the slot byte), then one write of ``kf_slot`` switches every later
event to it. An event reads the slot word once, so it never sees half a filter. No program is
reloaded. The fd marks of dropped opens are cleared at each switch (a close then kept that
could have been dropped costs nothing; a stale mark could drop a close the state needs).
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct
from typing import Any

from detector.kfilter.atoms import Atom
from detector.kfilter.plan import FLAG_SOURCES, SOCK_BIT0, UBUF_FDS, KernelPlan
from detector.kfilter.sockatoms import SOCK_EVENTS
from detector.sources.layout import HIST_BARE, HIST_CLIENT, HIST_SERVER
from detector.sources.syscall_nrs import NUMBERS
from detector.sources.syscalls import FD_EVENTS

NR_SYSCALLS = 512  # events.h
KF_CLAUSES, KF_FLAGS = 16, 8
KF_ON, KF_PATH, KF_DIR, KF_MARK_DROPS, KF_CLOSE_MARKS = 1, 2, 4, 8, 16
KF_UNMARK_RET, KF_UNMARK_UBUF, KF_SUFFIX, KF_TUPLE, KF_UNMARK_ARG0 = 32, 64, 128, 256, 512
KF_SOCK_HIST, KF_DIRPATH, KF_DIRFD = 1024, 2048, 4096
HIST_ROLE = {"socket": HIST_BARE, "connect": HIST_CLIENT, "accept": HIST_SERVER,
             "accept4": HIST_SERVER}  # fmt: skip
KF_NETS = 24
KF_T = {"fam": 1, "stype": 2, "l4": 3, "net": 4, "port": 5}  # events.h KF_T_*
KF_ENDS = {"local": 1, "remote": 2, "either": 3, "": 0}
KF_TUPLE_SRC = {"arg0": 1, "ret": 2}
UNMARK_ARG0 = frozenset({"connect", "bind", "listen"})  # they make an entry for their fd
KF_RTRIE = 2  # slot byte of the suffix trie's keys (the reversed path): 2 + slot
KF_SRC_UBUF, KF_SRC_CREAT, KF_SRC_RET = 7, 8, 9
NEVER = 1 << 63  # an unused clause: needs bit 63, which no atom word has (events.c KF_EQ)


def _flags_src(evttype: str) -> int:
    src = FLAG_SOURCES.get(evttype, (0, 0))[0]
    if src == "ubuf":
        return KF_SRC_UBUF
    if src == "creat":
        return KF_SRC_CREAT
    if src == "ret":
        return KF_SRC_RET
    return int(src) + 1 if isinstance(src, int) and evttype in FLAG_SOURCES else 0


Test = tuple[int, int, int, tuple[int, ...], tuple[int, ...], int]  # kind, end, value, m, n, bit


def sock_tests(atoms: tuple[Atom, ...]) -> list[Test]:
    """The ``struct kf_net`` tests of a syscall's socket atoms (one per network or port)."""
    out: list[Test] = []
    for i, atom in enumerate(atoms):
        kind, end, bit = KF_T[atom.kind], KF_ENDS[atom.op], SOCK_BIT0 + i
        if atom.kind == "net":
            for text in atom.strings:
                net = ipaddress.ip_network(text)
                size = 4 if net.version == 4 else 16
                mask = net.netmask.packed.ljust(16, b"\0")
                base = net.network_address.packed.ljust(16, b"\0")
                fam = 2 if size == 4 else 10
                out.append((kind, end, fam, struct.unpack("<4I", mask),
                            struct.unpack("<4I", base), bit))  # fmt: skip
        elif atom.kind == "port":
            out.extend((kind, end, int(p), (0,) * 4, (0,) * 4, bit) for p in atom.strings)
        else:
            out.append((kind, 0, atom.value, (0,) * 4, (0,) * 4, bit))
    return out


def entries(plan: KernelPlan | None) -> dict[str, dict[str, Any]]:
    """The ``kf_sys`` fields per syscall name (absent: keep every event)."""
    out: dict[str, dict[str, Any]] = {}
    if plan is None:
        return out
    for name, sf in plan.syscalls.items():
        mode = 0
        if not sf.keep_all:
            mode = KF_ON | (KF_PATH * sf.uses_path) | (KF_DIR * sf.uses_dir) | (
                KF_MARK_DROPS * sf.mark_drops) | (KF_CLOSE_MARKS * sf.close_marks) | (
                KF_SUFFIX * sf.uses_suffix) | (KF_TUPLE * bool(sf.sock_atoms)) | (
                KF_SOCK_HIST * (name in HIST_ROLE)) | (KF_DIRFD * sf.dirfd)  # fmt: skip
        mode |= KF_DIRPATH * sf.dirpaths  # fchdir's too, which keeps every event
        if mode:
            path_arg = FLAG_SOURCES[name][1] + 1 if name in FLAG_SOURCES else 0
            out[name] = {"mode": mode, "clauses": sf.clauses, "flags": sf.flag_atoms,
                         "flags_src": _flags_src(name), "path_arg": path_arg,
                         "tests": sock_tests(sf.sock_atoms),
                         "tuple_src": KF_TUPLE_SRC.get(SOCK_EVENTS.get(name, ""), 0),
                         "hist": HIST_ROLE.get(name, 0)}  # fmt: skip
    connect = out.setdefault("connect", {"mode": 0, "clauses": (), "flags": (), "flags_src": 0,
                                         "path_arg": 0, "tests": [], "tuple_src": 1})  # fmt: skip
    connect["mode"] |= KF_SOCK_HIST  # a kept connect deletes its socket's history, always
    connect["hist"] = HIST_CLIENT
    if plan.marking:
        for name in FD_EVENTS:
            e = out.setdefault(name, {"mode": 0, "clauses": (), "flags": (), "flags_src": 0,
                                      "path_arg": 0, "tests": [], "tuple_src": 0,
                                      "hist": 0})  # fmt: skip
            e["mode"] |= KF_UNMARK_UBUF if name in UBUF_FDS else (
                KF_UNMARK_ARG0 if name in UNMARK_ARG0 else KF_UNMARK_RET)  # fmt: skip
    return out


def _leaf(table: Any, e: dict[str, Any] | None) -> Any:
    leaf = table.Leaf()
    for i in range(KF_CLAUSES):
        leaf.must[i], leaf.nots[i] = NEVER, 0
    if e is None:
        return leaf
    for i, (must, nots) in enumerate(e["clauses"]):
        leaf.must[i], leaf.nots[i] = must, nots
    for i, (mask, value) in enumerate(e["flags"]):
        leaf.fmask[i], leaf.fval[i] = mask, value
    leaf.nclauses, leaf.mode = len(e["clauses"]), e["mode"]
    leaf.nflags, leaf.flags_src, leaf.path_arg = len(e["flags"]), e["flags_src"], e["path_arg"]
    leaf.tuple_src, leaf.hist = e["tuple_src"], e["hist"]
    for i, (kind, end, value, mask, net, bit) in enumerate(e["tests"]):
        t = leaf.net[i]
        t.kind, t.end, t.value, t.bit = kind, end, value, bit
        for j in range(4):
            t.mask[j], t.net[j] = mask[j], net[j]
    return leaf


def _put(trie: Any, first: int, raw: bytes, bits: int) -> None:
    """One trie entry: the slot byte ``first``, then ``raw`` as a prefix."""
    key = trie.Key()
    key.data[0] = first
    for i, byte in enumerate(raw[: len(key.data) - 1]):
        key.data[i + 1] = byte
    key.prefixlen = 8 * (1 + min(len(raw), len(key.data) - 1))
    trie[key] = ctypes.c_uint64(bits)


def live_slot(bpf: Any) -> int:
    """The slot events read now."""
    return int(bpf[b"kf_slot"][ctypes.c_int(0)].value) & 1


def write_plan(bpf: Any, plan: KernelPlan | None) -> int:
    """Write ``plan`` (None: keep everything) into the idle slot and switch to it."""
    word = int(bpf[b"kf_slot"][ctypes.c_int(0)].value)
    slot = 1 - (word & 1)
    trie = bpf[b"kf_trie"]
    for key in [k for k in trie if k.data[0] & 1 == slot]:
        del trie[key]
    if plan is not None:
        for path, bits in plan.trie.items():
            _put(trie, slot, path.encode("utf-8", "surrogateescape"), bits)
        for suffix, bits in plan.rtrie.items():
            _put(trie, KF_RTRIE + slot, suffix.encode("utf-8", "surrogateescape")[::-1], bits)
    table = bpf[b"kf_sys"]
    want = entries(plan)
    for name, nr in NUMBERS.items():
        if nr < NR_SYSCALLS:
            table[ctypes.c_int(slot * NR_SYSCALLS + nr)] = _leaf(table, want.get(name))
    # One more than the old word: its low bit is the slot; events.c's fd marks made under
    # another word are void (kf_bits).
    bpf[b"kf_slot"][ctypes.c_int(0)] = ctypes.c_uint32((word + 1) & 0xFFFFFFFF)
    # Marks made under the old plan go: while a plan without marking (or none) ran, a marked fd
    # may have been closed and made again by a kept event that did not unmark it.
    bpf[b"kf_marks"].clear()
    return slot


def stats(bpf: Any) -> dict[str, tuple[int, int]]:
    """Per syscall name: (events the filter saw, events it dropped), summed over CPUs."""
    table = bpf[b"kf_stats"]
    out = {}
    for name, nr in NUMBERS.items():
        if nr >= NR_SYSCALLS:
            continue
        seen = sum(int(v) for v in table[ctypes.c_int(nr)])
        if seen:
            dropped = sum(int(v) for v in table[ctypes.c_int(NR_SYSCALLS + nr)])
            out[name] = (seen, dropped)
    return out
