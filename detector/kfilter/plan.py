"""The kernel's filter plan: per syscall, clauses of atom bits; a path trie; and :func:`decide`,
the program's decision in Python (the maps' semantics, shared by the tests and the replay).

Bits of an event's atom word (events.h ``KF_*``): bit 0 the result is >= 0; bits 1..8 the
syscall's flag atoms (``flags & mask == value``); bit 9 the opened file is a directory;
bits 10..61 path atoms, shared by every syscall (the tries' values: prefixes and equalities
in one trie, suffixes in a second one keyed by the reversed path); bit 62 the result is 0
(a clone's child side). The socket events (no path atoms) use bits 10..25 for their socket
atoms instead (sockatoms.py), tests of the kernel socket; without an inet socket those bits
are unknown: a clause then ignores them. A clause is
``(must, must_not)``: it holds when every ``must`` bit is set and no ``must_not`` bit is. An
event is kept when a clause holds, when its syscall keeps everything, or when the plan needs
its path and the path is not evaluable. ``comm`` atoms are not evaluated in the kernel: they
count as unknown (their literals are dropped, which widens the clause).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from detector.kfilter.atoms import OK, PATH_MAX_EVAL, Atom, Dnf, evaluable_path
from detector.kfilter.sockatoms import SOCK_EVENTS, SOCK_KINDS, SockFacts, sock_holds

BIT_OK = 1
FLAG_BIT0 = 1
MAX_FLAG_ATOMS = 8
BIT_DIR = 1 << 9
PATH_BIT0 = 10
MAX_PATH_ATOMS = 52  # bit 62 is BIT_ZERO; bit 63 stays clear (the bits return as s64)
BIT_ZERO = 1 << 62
MAX_CLAUSES = 16  # events.h KF_CLAUSES
SOCK_BIT0 = 10  # socket atoms (socket events only: they have no path atoms)
MAX_SOCK_ATOMS = 16
SOCK_MASK = ((1 << MAX_SOCK_ATOMS) - 1) << SOCK_BIT0
MAX_SOCK_TESTS = 24  # events.h KF_NETS: a network or a port each, a family/type/protocol test
MAX_TRIE = 2000  # path strings per slot (events.c's kf_trie holds 4096: two slots)
# Where each filtered syscall's flags and path come from: (flags source, path argument).
# Flags: an argument index, "ubuf" (openat2's how.flags) or a constant (creat).
OPEN_SOURCES: dict[str, tuple[int | str, int]] = {
    "open": (1, 0), "openat": (2, 1), "openat2": ("ubuf", 1), "creat": ("creat", 0),
}  # fmt: skip
# Syscalls whose flag tests read a command argument, no path (-1): fcntl's cmd.
CMD_SOURCES: dict[str, tuple[int | str, int]] = {"fcntl": (1, -1)}
# Clone flags, no path: clone's first argument, clone3's ``struct clone_args`` (its low word).
# fork and vfork have none (their flags are fixed: no CLONE_PARENT, no CLONE_THREAD).
CLONE_SOURCES: dict[str, tuple[int | str, int]] = {"clone": (0, -1), "clone3": ("ubuf", -1)}
# Socket events: their flag tests read the result (``evt.res = EINPROGRESS``).
RET_SOURCES: dict[str, tuple[int | str, int]] = {name: ("ret", -1) for name in SOCK_EVENTS}
FLAG_SOURCES = {**OPEN_SOURCES, **CMD_SOURCES, **RET_SOURCES, **CLONE_SOURCES}
CREAT_FLAGS = 0o1 | 0o100 | 0o1000
UBUF_FDS = frozenset({"pipe", "pipe2", "socketpair"})  # their two fds are at the ubuf argument
DUP_CMDS = frozenset({0, 1030})  # fcntl's commands that make an fd: F_DUPFD, F_DUPFD_CLOEXEC


@dataclass(frozen=True, slots=True)
class SyscallFilter:
    """What the kernel keeps of one syscall (``keep_all`` with the reason, or the clauses)."""

    evttype: str
    keep_all: bool = True
    reason: str = ""
    clauses: tuple[tuple[int, int], ...] = ()
    flag_atoms: tuple[tuple[int, int], ...] = ()  # (mask, value) of bits 1, 2, ...
    uses_path: bool = False
    uses_suffix: bool = False  # some path atom is a suffix: the reversed path is looked up
    uses_dir: bool = False
    mark_drops: bool = False  # a dropped open (pipe) marks the fd(s) it made: their closes go too
    close_marks: bool = False  # close: dropped when its fd is marked (and no clause holds)
    dirpaths: bool = False  # opens: dropped directories keep their path in the kernel, against
    # which relative names are read; opens and fchdir: a kept record carries its dir's path
    dirfd: bool = False  # fcntl: the "dir" atom says its fd has a path there
    sock_atoms: tuple[Atom, ...] = ()  # socket atoms of bits SOCK_BIT0, SOCK_BIT0 + 1, ...


@dataclass
class KernelPlan:
    """Every syscall's filter and the path trie (entry -> atom bits; ``x\\0`` is ``= x``)."""

    syscalls: dict[str, SyscallFilter] = field(default_factory=dict)
    trie: dict[str, int] = field(default_factory=dict)
    rtrie: dict[str, int] = field(default_factory=dict)  # suffix -> bits (kept unreversed)
    path_atoms: dict[Atom, int] = field(default_factory=dict)  # atom -> bit
    notes: list[str] = field(default_factory=list)
    marking: bool = False  # some open marks its dropped fds: fd-making events unmark theirs

    def filter_of(self, evttype: str) -> SyscallFilter:
        """The filter of ``evttype`` (keep everything when the plan has none)."""
        return self.syscalls.get(evttype) or SyscallFilter(evttype)


class _TooBig(Exception):
    pass


def _path_bit(plan: KernelPlan, atom: Atom) -> int:
    bit = plan.path_atoms.get(atom)
    if bit is None:
        if len(plan.path_atoms) >= MAX_PATH_ATOMS:
            raise _TooBig(f"more than {MAX_PATH_ATOMS} path atoms")
        bit = 1 << (PATH_BIT0 + len(plan.path_atoms))
        plan.path_atoms[atom] = bit
        if atom.op == "contains":  # contains-atoms never hold on an evaluable path
            return bit
        trie = plan.rtrie if atom.op == "suffix" else plan.trie
        for s in atom.strings:
            if len(s.encode("utf-8", "surrogateescape")) > PATH_MAX_EVAL:
                continue  # longer than any evaluable path: never equal to, a prefix or suffix
            key = s + "\0" if atom.op == "eq" else s
            trie[key] = trie.get(key, 0) | bit
        if len(plan.trie) + len(plan.rtrie) > MAX_TRIE:
            raise _TooBig(f"more than {MAX_TRIE} path strings")
    return bit


def sock_tests(atom: Atom) -> int:
    """How many of the kernel's socket tests an atom takes (one per network or port)."""
    return len(atom.strings) if atom.kind in ("net", "port") else 1


def _bit(plan: KernelPlan, flags: list[tuple[int, int]], atom: Atom,
         socks: list[Atom]) -> int | None:  # fmt: skip
    """The atom's bit (None: the kernel does not evaluate it)."""
    if atom == OK:
        return BIT_OK
    if atom.kind == "zero":
        return BIT_ZERO
    if atom.kind == "dir":
        return BIT_DIR
    if atom.kind in SOCK_KINDS:
        if atom not in socks:
            if len(socks) >= MAX_SOCK_ATOMS or sum(map(sock_tests, socks)) + sock_tests(
                    atom) > MAX_SOCK_TESTS:  # fmt: skip
                raise _TooBig(f"more than {MAX_SOCK_TESTS} socket tests")
            socks.append(atom)
        return 1 << (SOCK_BIT0 + socks.index(atom))
    if atom.kind in ("flags", "cmd", "res"):
        key = (atom.mask, atom.value)
        if key not in flags:
            if len(flags) >= MAX_FLAG_ATOMS:
                raise _TooBig(f"more than {MAX_FLAG_ATOMS} flag tests")
            flags.append(key)
        return 1 << (FLAG_BIT0 + flags.index(key))
    if atom.kind == "path":
        return _path_bit(plan, atom)
    return None


def compile_syscall(plan: KernelPlan, evttype: str, dnf: Dnf, *, mark_drops: bool = False,
                    close_marks: bool = False, dirpaths: bool = False,
                    dirfd: bool = False) -> SyscallFilter:  # fmt: skip
    """``dnf`` as clauses of bits for ``evttype``; keep-all when it does not fit the maps."""
    known = {"ok", "zero"} | ({"cmd"} if evttype in CMD_SOURCES else set()) | (
        {"dir"} if dirfd else set()) | (
        SOCK_KINDS | {"res"} if evttype in SOCK_EVENTS else set()) | (
        {"flags"} if evttype in CLONE_SOURCES else set())  # fmt: skip
    if evttype in OPEN_SOURCES:
        known = {"ok", "flags", "path", "dir", "comm"}  # comm: dropped by _bit
    if any(a.kind not in known for c in dnf for a, _ in c):
        dnf = frozenset(frozenset(x for x in c if x[0].kind in known) for c in dnf)
    flags: list[tuple[int, int]] = []
    socks: list[Atom] = []
    clauses: set[tuple[int, int]] = set()
    try:
        for c in dnf:
            must = nots = 0
            for atom, positive in c:
                bit = _bit(plan, flags, atom, socks)
                if bit is None:
                    continue  # unknown to the kernel: the literal is dropped
                if positive:
                    must |= bit
                else:
                    nots |= bit
            clauses.add((must, nots))
    except _TooBig as exc:
        reason = str(exc)
    else:
        reason = ""
        if (0, 0) in clauses:
            reason = "a rule's condition holds for every event the kernel can tell apart"
        elif len(clauses) > MAX_CLAUSES:
            reason = f"more than {MAX_CLAUSES} clauses"
    if reason:
        plan.syscalls[evttype] = SyscallFilter(evttype, reason=reason)
        return plan.syscalls[evttype]
    every = 0
    for m, n in clauses:
        every |= m | n
    sf = SyscallFilter(evttype, False, "", tuple(sorted(clauses)), tuple(flags),
                       uses_path=dirpaths or (not socks and bool(
                           (every & ~BIT_ZERO) >> PATH_BIT0)),
                       uses_suffix=any(a.op == "suffix" and b & every
                                       for a, b in plan.path_atoms.items()),
                       uses_dir=bool(every & BIT_DIR),
                       mark_drops=mark_drops, close_marks=close_marks,
                       sock_atoms=tuple(socks), dirpaths=dirpaths, dirfd=dirfd)  # fmt: skip
    plan.syscalls[evttype] = sf
    return sf


def finish_trie(plan: KernelPlan) -> None:
    """Give each trie entry the bits of every entry it extends (the trie finds the longest);
    in the suffix trie, of every entry it ends with."""
    for trie, extends in ((plan.trie, str.startswith), (plan.rtrie, str.endswith)):
        base = dict(trie)
        for key in base:
            trie[key] = reduce(or_, (b for other, b in base.items() if extends(key, other)), 0)


def path_bits(plan: KernelPlan, path: str) -> int:
    """The tries' answer for an evaluable path: the longest matching entries' bits."""
    probe = path + "\0"
    best = max((k for k in plan.trie if probe.startswith(k)), key=len, default=None)
    rbest = max((k for k in plan.rtrie if path.endswith(k)), key=len, default=None)
    return (0 if best is None else plan.trie[best]) | (0 if rbest is None else plan.rtrie[rbest])


def event_flags(evttype: str, args: tuple[int, ...], ubuf0: int | None) -> int | None:
    """The flag word the kernel sees: open flags, fcntl's command (None: unknown, e.g.
    openat2's struct was unreadable)."""
    src = FLAG_SOURCES.get(evttype, (None, 0))[0]
    if src == "creat":
        return CREAT_FLAGS
    if src == "ubuf":
        return None if ubuf0 is None else ubuf0 & 0xFFFFFFFF
    if isinstance(src, int) and src < len(args):
        return args[src] & 0xFFFFFFFF
    return 0


@dataclass(frozen=True, slots=True)
class Facts:
    """What the kernel program has in hand at one syscall's exit."""

    evttype: str
    ret: int
    flags: int | None = 0
    path: str | None = None  # a relative name joined to its dirfd's kernel path, if it has one
    is_dir: bool = False  # the opened file is a directory (fcntl: its fd has a kernel path)
    fd_arg: int = -1  # close: the fd closed
    fds_made: tuple[int, ...] = ()  # fds the syscall made (its result, pipe's pair)
    sock: SockFacts | None = None  # the kernel socket (socket events; None: no inet socket)


def decide(plan: KernelPlan, f: Facts) -> bool:
    """Whether the kernel keeps this event by its clauses (marks aside: see :class:`Marks`)."""
    sf = plan.syscalls.get(f.evttype)
    if sf is None or sf.keep_all:
        return True
    bits = (BIT_OK if f.ret >= 0 else 0) | (BIT_ZERO if f.ret == 0 else 0)
    flags = f.ret & 0xFFFFFFFF if f.evttype in RET_SOURCES else f.flags
    if sf.flag_atoms:
        if flags is None:
            return True
        for i, (mask, value) in enumerate(sf.flag_atoms):
            if flags & mask == value:
                bits |= 1 << (FLAG_BIT0 + i)
    unknown = 0
    if sf.sock_atoms:
        if f.sock is None:
            unknown = SOCK_MASK
        else:
            for i, atom in enumerate(sf.sock_atoms):
                bits |= sock_holds(atom, f.sock) << (SOCK_BIT0 + i)
    if sf.uses_dir and f.is_dir and (f.ret >= 0 or sf.dirfd):
        bits |= BIT_DIR
    if sf.uses_path:
        if f.path is None or not evaluable_path(f.path):
            return True
        bits |= path_bits(plan, f.path)
    return any(bits & (m & ~unknown) == m & ~unknown and not bits & n & ~unknown
               for m, n in sf.clauses)  # fmt: skip


class Marks:
    """The kernel's fd marks: a dropped open's fd, so that its close is dropped too.

    A mark is (process, fd) and lasts until the fd is closed, made again by a kept event, the
    process execs (the kernel compares the mm) or ends (it compares the start time).
    """

    def __init__(self) -> None:
        self.marked: set[tuple[int, int]] = set()

    def keep(self, plan: KernelPlan, f: Facts, pid: int) -> bool:
        """The kernel's whole decision for one event of process ``pid``, marks updated."""
        sf = plan.filter_of(f.evttype)
        kept = decide(plan, f)
        if sf.close_marks:
            was = (pid, f.fd_arg) in self.marked
            self.marked.discard((pid, f.fd_arg))
            kept = kept or not was
        elif not kept and sf.mark_drops and f.ret >= 0 and (
                not sf.dirfd or f.flags in DUP_CMDS):  # fmt: skip
            for fd in f.fds_made if f.evttype in UBUF_FDS else (f.ret,):
                self.marked.add((pid, fd))
        if kept and plan.marking:
            for fd in f.fds_made:
                self.marked.discard((pid, fd))
        return kept

    def process_gone(self, pid: int) -> None:
        """The process execs or ends: its marks no longer hold."""
        self.marked = {m for m in self.marked if m[0] != pid}
