"""Atoms, literals and DNFs: the kernel filter's vocabulary (atoms.py and sockatoms.py make
them from conditions; an :class:`Atom`'s kinds are described there), and how an atom holds on
one event's facts."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

MAX_CLAUSES = 32


@dataclass(frozen=True, slots=True, order=True)
class Atom:
    """One test the kernel can make (its kinds: atoms.py and sockatoms.py docstrings)."""

    kind: str
    mask: int = 0
    value: int = 0
    op: str = ""  # path: "eq" | "prefix" | "suffix" | "contains"
    strings: tuple[str, ...] = ()
    exact: bool = True  # its negation is exact too

    def holds(self, *, ok: bool, flags: int, path: str | None, comm: str, is_dir: bool,
              sock: object = None, zero: bool = False) -> bool:  # fmt: skip
        """The atom on one event's facts (``path`` None: not evaluable; ``sock``: the kernel
        socket's facts, None when there is no inet socket: its atoms are unknown, so True)."""
        if self.kind == "ok":
            return ok
        if self.kind == "zero":
            return zero
        if self.kind in ("flags", "cmd", "res"):  # the flag word (fcntl: cmd; sockets: ret)
            return flags & self.mask == self.value
        if self.kind in ("fam", "stype", "l4", "net", "port"):
            return True if sock is None else sock_holds(self, sock)  # type: ignore[arg-type]
        if self.kind == "comm":
            return comm in self.strings
        if self.kind == "dir":
            return is_dir
        assert path is not None
        if self.op == "eq":
            return path in self.strings
        if self.op == "suffix":
            return any(path.endswith(s) for s in self.strings)
        if self.op == "contains":
            return any(s in path for s in self.strings)
        return any(path.startswith(s) for s in self.strings)


Literal = tuple[Atom, bool]
Clause = frozenset[Literal]
Dnf = frozenset[Clause]
TRUE: Dnf = frozenset({frozenset()})
FALSE: Dnf = frozenset()
OK = Atom("ok")
IS_DIR = Atom("dir")
ZERO = Atom("zero")  # the result is 0: the child's side of a clone (state only)


def _simplify(clauses: set[Clause]) -> Dnf:
    """Drop contradictory clauses and those a smaller clause subsumes."""
    live = [c for c in clauses if not any((a, not p) in c for a, p in c)]
    live.sort(key=len)
    out: list[Clause] = []
    for c in live:
        if not any(k <= c for k in out):
            out.append(c)
    return frozenset(out)


def dnf_or(a: Dnf, b: Dnf) -> Dnf:
    """Either holds."""
    return _simplify(set(a) | set(b))


def dnf_and(a: Dnf, b: Dnf) -> Dnf:
    """Both hold; past MAX_CLAUSES the side with fewer clauses (a sound widening)."""
    if len(a) * len(b) > MAX_CLAUSES:
        return a if len(a) <= len(b) else b
    return _simplify({x | y for x in a for y in b})


def lit(atom: Atom, positive: bool = True) -> Dnf:
    """One literal; the negation of an inexact atom is TRUE (unknown)."""
    if not positive and not atom.exact:
        return TRUE
    return frozenset({frozenset({(atom, positive)})})



# -- the atoms on one socket's facts (the kernel's tuple), shared by the plan's decide --------
SockFacts = tuple[int, int, int, bytes, int, bytes, int]  # family, type, l4, laddr, lport, ...


def _in_net(addr: bytes, family: int, nets: tuple[str, ...]) -> bool:
    size = 4 if family == socket.AF_INET else 16
    ip = ipaddress.ip_address(addr[:size])
    return any(ip in ipaddress.ip_network(n) for n in nets)


def sock_holds(atom: Atom, facts: SockFacts) -> bool:
    """A socket atom on the kernel socket's facts."""
    family, stype, l4, laddr, lport, raddr, rport = facts
    if atom.kind == "fam":
        return family == atom.value
    if atom.kind == "stype":
        return stype == atom.value
    if atom.kind == "l4":
        return l4 == atom.value
    ends = {"local": ((laddr, lport),), "remote": ((raddr, rport),),
            "either": ((laddr, lport), (raddr, rport))}[atom.op]  # fmt: skip
    if atom.kind == "port":
        return any(str(p) in atom.strings for _, p in ends)
    return any(_in_net(a, family, atom.strings) for a, _ in ends)


