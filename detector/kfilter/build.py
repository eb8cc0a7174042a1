"""From loaded rules to a :class:`~detector.kfilter.plan.KernelPlan`: what each selected event
type keeps, derived from the rules' conditions and from what the state tables need.

State demand, derived from the rules (not assumed):

* The thread table needs every exec and exit (``STATE_SET`` minus what follows).
* Of a clone (``clone``, ``clone3``, ``fork``, ``vfork``) it needs the child's side (result
  0), which always comes (the child returns through the same syscall exit) and from which
  it builds the child as from the caller's side (``state/clones.child_from_event``); the
  caller's side (result > 0) only where the child's cannot vouch for itself: a
  ``CLONE_PARENT`` or ``CLONE_THREAD`` clone. Failed clones (< 0) only for their rules.
  Not even the child's side of a ``CLONE_VFORK`` clone (``vfork``, ``posix_spawn``): its
  caller waits until the child execs or exits, so the child's first kept event (its exec,
  mostly) builds the same child from the same caller. Until it execs, the kernel gives its
  kept events the process context and marks them (events.h ``K_VFORK``); every process
  context tells when the task started, so the child's start time is the same either way.
* File fds (opens) feed the fd table. Later events read that table only through ``fd.*`` fields
  of rules on other event types (``dup``'s ``fd.type``, ``close``'s ``fd.name``...). A rule that
  requires a socket there (``fd.type``/``fd.typechar`` of a socket kind, as a conjunct) cannot
  tell a file entry from a missing one (a missing fd reads as no socket; live, the tracker even
  reads it from /proc). If every such reader is socket-only, an open is needed only by the
  rules on opens; its close only when its open was kept (the kernel marks the fds of dropped
  opens and drops their closes). The state reads a directory's fd later as the ``dirfd`` of a
  relative open and in ``fchdir``: the kernel keeps the path of a directory whose open it
  drops (kfilter.h ``kf_dirs``, by ``struct file``), reads a relative name against it, and
  gives the path to the records of those events that it keeps (``ctx["dirpath"]``); a
  directory whose path it cannot keep is kept. A rule reading the table beyond the event's
  fd (``proc.stdout.type``, ``proc.fdopencount``, ``fd.types``...), on any type, needs every
  open.
* Pipes (``pipe``, ``pipe2``) feed the fd table only: under the same condition as opens they
  go, their two fds marked so that their closes go too.
* ``fcntl`` changes the fd table only with the commands that make an fd (``F_DUPFD``,
  ``F_DUPFD_CLOEXEC``: the tracker copies the old entry), and not even those when the old fd
  is a directory whose path the kernel keeps (the copy would be of a directory the table does
  not have, and the new fd shares its path: its mark drops its close); the others
  (``F_GETFL``, ``F_SETFD``, locks...) are needed only by the rules on ``fcntl``.
* Inet TCP stream sockets (``socket``, ``connect``, ``accept``/``accept4``): their fd entries
  are read later only by rules on other events (``dup``'s redirect rule, ``sendto``'s
  ``outbound`` branch...; those on the dup family and ``fcntl`` do not count: their records
  carry the socket's history, from which the tracker builds its entry, kfilter.h ``kf_hist``).
  If every such rule is blind to TCP sockets (it holds only when
  ``fd.l4proto`` is set and not ``tcp``: a partial or missing entry fails it too), these events
  are needed only by the rules on them, evaluated in the kernel on its socket (sockatoms.py):
  a dropped ``socket``/``accept`` marks its fd so that its close goes too; a kept ``connect``,
  ``bind`` or ``listen`` (which make an entry) unmarks its fd.
* Everything else in ``STATE_SET`` is kept whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass

from detector.kfilter.atoms import (
    FALSE,
    IS_DIR,
    OPEN_TYPES,
    TRUE,
    Atom,
    Dnf,
    dnf_and,
    dnf_or,
    lit,
    over,
)
from detector.kfilter.dnf import ZERO
from detector.kfilter.plan import KernelPlan, SyscallFilter, compile_syscall, finish_trie
from detector.kfilter.sockatoms import HIST_SERVED, NAME_FIELDS, SOCK_EVENTS, tcp_stream
from detector.rules.lang.ast import And, BinaryCheck, Expr, FieldRef, ListNode, Not, Or, ValueNode

PIPES = frozenset({"pipe", "pipe2"})  # fds no socket-only reader can tell from missing ones
CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
TABLE_FIELDS = frozenset({"proc.fdopencount", "fd.types"})  # read the whole fd table
SOCKET_TYPES = {"fd.type": {"ipv4", "ipv6", "unix"}, "fd.typechar": {"4", "6", "u"}}


@dataclass
class TypeDemand:
    """One event type: the rules' DNF, who matches it, who leaves it unfiltered."""

    evttype: str
    dnf: Dnf = FALSE
    rules: list[str] = field(default_factory=list)
    unfiltered_by: list[str] = field(default_factory=list)
    state: str = ""  # why the state tables need events of it ("" for none)
    dns_never: list[str] = field(default_factory=list)  # rules false here by fd.sip.name...


@dataclass
class Build:
    """The plan and how it came about (for ``rules filters``)."""

    plan: KernelPlan
    types: dict[str, TypeDemand]
    fd_readers: list[str]  # rules that read file fds on later events
    contributions: dict[tuple[str, str], Dnf]  # (rule, type) -> its DNF
    sock_readers: list[str] = field(default_factory=list)  # ... and TCP sockets


def fd_making_cmds() -> Dnf:
    """``fcntl``'s commands the fd tracker reads: those that make an fd (state/fds.py)."""
    from detector.state.fds import F_DUPFD, F_DUPFD_CLOEXEC

    return dnf_or(lit(Atom("cmd", 0xFFFFFFFF, F_DUPFD)), lit(Atom("cmd", 0xFFFFFFFF,
                                                                  F_DUPFD_CLOEXEC)))


CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x00004000, 0x00008000, 0x00010000  # state/clones.py


def clone_state(evttype: str) -> Dnf:
    """What the thread table needs of a clone-family event (see the module docstring)."""
    if evttype == "vfork":
        return FALSE
    if evttype == "fork":
        return lit(ZERO)
    need = dnf_and(lit(ZERO), lit(Atom("flags", CLONE_VFORK, 0)))
    for flag in (CLONE_PARENT, CLONE_THREAD):
        need = dnf_or(need, lit(Atom("flags", flag, 0), False))
    return need


def clone_words(evttype: str) -> str:
    """``rules filters``' words for what the thread table needs of a clone-family event."""
    if evttype == "vfork":
        return "none: the child's first kept event builds it from its waiting caller"
    if evttype == "fork":
        return "the child's side"
    return ("the child's side but of CLONE_VFORK clones (the child's first kept event builds it "
            "from its waiting caller); the caller's of CLONE_PARENT/CLONE_THREAD clones")


def _walk(node: object) -> Iterable[object]:
    yield node
    if is_dataclass(node) and not isinstance(node, type):
        for f in fields(node):
            value = getattr(node, f.name)
            for item in value if isinstance(value, tuple) else (value,):
                if is_dataclass(item):
                    yield from _walk(item)


def reads_fd(tree: Expr, evttype: str | None = None) -> bool:
    """Whether a condition reads any ``fd.*`` field (on ``evttype``: in the parts that can
    still hold for it, ``evt.type`` checks folded)."""
    if evttype is not None:
        if over(tree, evttype) == FALSE:
            return False
        if isinstance(tree, (And, Or)):
            return any(reads_fd(c, evttype) for c in tree.children)
        if isinstance(tree, Not):
            return reads_fd(tree.child)
    return any(isinstance(n, FieldRef) and n.name.startswith("fd.") for n in _walk(tree))


def socket_only(node: Expr) -> bool:
    """Whether the condition can only hold when the event's fd is a socket."""
    if isinstance(node, And):
        return any(socket_only(c) for c in node.children)
    if isinstance(node, Or):
        return all(socket_only(c) for c in node.children)
    if isinstance(node, BinaryCheck) and isinstance(node.left, FieldRef):
        kinds = SOCKET_TYPES.get(node.left.name)
        right = node.right
        vals = (right.value,) if isinstance(right, ValueNode) else (
            right.items if isinstance(right, ListNode) else None)  # fmt: skip
        return kinds is not None and node.op in ("=", "==", "in") and vals is not None and set(
            vals) <= kinds  # fmt: skip
    return False


def _enabled(rules: Iterable[object], chosen: bool = False) -> list[object]:
    """The syscall rules that can alert (``chosen``: the engine already chose them)."""
    return [r for r in rules if (chosen or getattr(r, "enabled", False))
            and getattr(r, "source", "") == "syscall"]  # fmt: skip


def table_fd_types() -> frozenset[str]:
    """Event types whose ``fd.*`` fields come from the fd table: those the fd tracker handles
    and those whose decoded arguments name an fd (``fd``, or ``oldfd``/``dirfd``...). Found by
    decoding a zero record of each type; a builder that fails on it counts as one."""
    from detector.sources.decode import BUILDERS
    from detector.state.fds import USED_FD, FdTracker

    out = set(FdTracker(read_proc=False).handlers)
    for name, builder in BUILDERS.items():
        try:
            keys = builder((0,) * 6, 0, ("", "", ""), None, (0, 0, 0), {})
        except Exception:  # a builder needing more than zeros: assume it names an fd
            out.add(name)
            continue
        if USED_FD.get(name, "fd") in keys:
            out.add(name)
    return frozenset(out - OPEN_TYPES)


def fd_readers(rules: Iterable[object], all_types: frozenset[str],
               chosen: bool = False) -> list[str]:  # fmt: skip
    """Rules that read fds made by earlier events, other than sockets (see the docstring)."""
    table_types = table_fd_types()
    out = []
    for r in _enabled(rules, chosen):
        tree = getattr(r, "tree", None)
        types = set(getattr(r, "evttypes", None) or all_types) & table_types
        if tree is None or (any(reads_fd(tree, t) for t in sorted(types))
                            and not socket_only(tree)) or reads_fd_table(tree):  # fmt: skip
            out.append(str(getattr(r, "name", "")))
    return out


def tcp_blind(node: Expr, evttype: str) -> bool:
    """Whether the condition, on ``evttype``, holds only when ``fd.l4proto`` is set and is not
    ``tcp`` (so a TCP socket's entry, whole, partial or missing, fails it)."""
    if isinstance(node, And):
        return any(tcp_blind(c, evttype) for c in node.children)
    if isinstance(node, Or):
        return all(tcp_blind(c, evttype) for c in node.children if over(c, evttype) != FALSE)
    if isinstance(node, BinaryCheck) and isinstance(node.left, FieldRef) and (
            node.left.name == "fd.l4proto" and node.left.arg is None):  # fmt: skip
        right = node.right
        vals = (right.value,) if isinstance(right, ValueNode) else (
            right.items if isinstance(right, ListNode) else None)  # fmt: skip
        if vals is None:
            return False
        if node.op == "!=":
            return vals == ("tcp",)
        return node.op in ("=", "==", "in") and "tcp" not in vals
    return False


def sock_readers(rules: Iterable[object], all_types: frozenset[str], chosen: bool = False,
                 served: frozenset[str] = HIST_SERVED) -> list[str]:  # fmt: skip
    """Rules that could read a TCP socket's fd on events other than the socket events and
    ``served`` (the dup family, whose records carry the socket's history)."""
    table_types = table_fd_types() - SOCK_EVENTS.keys() - served
    out = []
    for r in _enabled(rules, chosen):
        tree = getattr(r, "tree", None)
        types = set(getattr(r, "evttypes", None) or all_types) & table_types
        if tree is None or reads_fd_table(tree) or any(
                reads_fd(tree, t) and not tcp_blind(tree, t) for t in sorted(types)):  # fmt: skip
            out.append(str(getattr(r, "name", "")))
    return out


def reads_fd_table(tree: Expr) -> bool:
    """Whether a condition reads the thread's fd table beyond the event's own fd, on any
    event type: ``proc.stdin/stdout/stderr.*``, ``proc.fdopencount``, ``fd.types``."""
    return any(isinstance(n, FieldRef) and (n.name in TABLE_FIELDS or n.name.startswith(
        ("proc.stdin.", "proc.stdout.", "proc.stderr."))) for n in _walk(tree))  # fmt: skip


def demands(rules: Iterable[object], selected: Iterable[str], chosen: bool = False,
            ) -> tuple[dict[str, TypeDemand], dict[tuple[str, str], Dnf]]:  # fmt: skip
    """Per selected type: the join of the DNFs of the rules that can match it."""
    out = {t: TypeDemand(t) for t in sorted(selected)}
    contrib: dict[tuple[str, str], Dnf] = {}
    for r in _enabled(rules, chosen):
        name, tree = str(getattr(r, "name", "")), getattr(r, "tree", None)
        types = getattr(r, "evttypes", None)
        for t in sorted(out.keys() if types is None else set(types) & out.keys()):
            d = TRUE if tree is None else over(tree, t)
            if d == FALSE:
                if tree is not None and any(isinstance(n, FieldRef) and n.name in NAME_FIELDS
                                            for n in _walk(tree)):  # fmt: skip
                    out[t].dns_never.append(name)
                continue
            td = out[t]
            td.dnf = dnf_or(td.dnf, d)
            td.rules.append(name)
            contrib[(name, t)] = d
            if d == TRUE:
                td.unfiltered_by.append(name)
    return out, contrib


def build(rules: Iterable[object], selected: Iterable[str], chosen: bool = False) -> Build:
    """The kernel plan for these rules (``chosen``: an engine's, all can alert) and types."""
    from detector.sources.syscalls import STATE_SET, SUPPORTED

    rules = list(rules)
    types, contrib = demands(rules, selected, chosen)
    readers = fd_readers(rules, SUPPORTED, chosen)
    sreaders = sock_readers(rules, SUPPORTED, chosen)
    dup_readers = sorted(set(sock_readers(rules, SUPPORTED, chosen, frozenset())) - set(sreaders))
    plan = KernelPlan()
    dirs = not readers and bool(OPEN_TYPES & types.keys())  # directory opens may be dropped
    for t, td in types.items():
        if t in SOCK_EVENTS and not sreaders:
            td.state = "sockets other than TCP streams (no rule reads a TCP socket's fd later" + (
                ", but at dup, from the history the kernel keeps of the socket: " + ", ".join(
                    dup_readers) + ")" if dup_readers else ")")  # fmt: skip
            not_tcp = frozenset(frozenset({(a, not p)}) for c in tcp_stream() for a, p in c)
            compile_syscall(plan, t, dnf_or(td.dnf, not_tcp), mark_drops=t != "connect")
        elif t in SOCK_EVENTS:
            td.state = "every event (fd table): TCP sockets' fds are read later by " + ", ".join(
                sreaders)  # fmt: skip
        elif t in OPEN_TYPES:
            if readers:
                td.state = "every open: rules read file fds on later events"
                plan.syscalls[t] = SyscallFilter(t, reason=td.state)
                continue
            td.state = ("opens of directories whose path the kernel cannot keep (dirfd of "
                        "later opens, fchdir)")  # fmt: skip
            compile_syscall(plan, t, td.dnf, mark_drops=True, dirpaths=True)
        elif t == "fcntl" and dirs:
            td.state = ("the commands that make an fd (F_DUPFD, F_DUPFD_CLOEXEC: the fd table) "
                        "of fds that are not directories the kernel has the path of")
            compile_syscall(plan, t, dnf_or(td.dnf, dnf_and(fd_making_cmds(), lit(IS_DIR, False))),
                            mark_drops=True, dirfd=True)  # fmt: skip
        elif t == "fcntl":
            td.state = "the commands that make an fd (F_DUPFD, F_DUPFD_CLOEXEC: the fd table)"
            compile_syscall(plan, t, dnf_or(td.dnf, fd_making_cmds()))
        elif t == "fchdir" and dirs:
            td.state = "every event (the cwd; its record carries a dropped directory's path)"
            plan.syscalls[t] = SyscallFilter(t, reason=td.state, dirpaths=True)
        elif t in PIPES and not readers:
            td.state = "none: rules read no fds but sockets (a dropped pipe's fds are marked)"
            compile_syscall(plan, t, td.dnf, mark_drops=True)
        elif t in CLONES:
            td.state = clone_words(t)
            compile_syscall(plan, t, dnf_or(td.dnf, clone_state(t)))
        elif t in STATE_SET and t != "close":
            td.state = "every event (thread and fd tables)"
        elif t != "close" and td.rules:
            compile_syscall(plan, t, td.dnf)
    marking = any(sf.mark_drops and not sf.keep_all for sf in plan.syscalls.values())
    if "close" in types:
        td = types["close"]
        if marking:
            td.state = "closes of fds whose open was kept"
            compile_syscall(plan, "close", td.dnf, close_marks=True)
        else:
            td.state = "every event (fd table)"
    plan.marking = marking
    finish_trie(plan)
    return Build(plan, types, readers, contrib, sreaders)
