"""Socket atoms: tests on the kernel socket behind a ``socket``/``connect``/``accept`` event.

The BPF program reads the socket's both ends from the kernel socket (events.c ``fill_tuple``):
its family, type, layer-4 protocol, local and remote address and port. Userspace builds the
fd of a ``connect``/``accept`` from the same tuple (detector/state/fds.py ``_addresses``), so a
test on it equals the rule's comparison there, with Falco's semantics (``fd.ip``/``fd.net``/
``fd.port`` match either end, ``!=`` is "no end equals"; a missing value fails every
comparison). The role decides the ends: ``connect`` is the client (``fd.cip`` is the local
end), ``accept`` the server (``fd.sip`` is the local end). On ``socket`` only the family is
the fd's (its ``fd.l4proto`` comes from the type argument, not the kernel socket).

When the kernel finds no IPv4/IPv6 socket (unix, netlink, a failed call) the socket atoms are
unknown: the program treats each of their literals as holding (a sound widening); an atom whose
value can never hold on an inet socket (``fd.typechar = u``) is a test of an impossible value,
so that it too stays unknown there. ``evt.res = ENAME`` is exact on every event: a test of the
result (``res``: ``ret == -errno``).
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from detector.kfilter.dnf import FALSE, TRUE, Atom, Dnf, SockFacts, dnf_or, lit, sock_holds
from detector.sources.layout import L4_CODES

# Socket events and where the program finds the socket's fd: the result or the first argument.
SOCK_EVENTS: dict[str, str] = {"socket": "ret", "connect": "arg0", "accept": "ret",
                               "accept4": "ret"}  # fmt: skip
SERVER_EVENTS = frozenset({"accept", "accept4"})
# Events whose records carry the history of a socket whose socket/connect/accept the kernel
# dropped (events.c kf_hist): the tracker builds its fd entry from it (state/sockets.py).
HIST_SERVED = frozenset({"dup", "dup2", "dup3", "fcntl"})
FAMILIES: dict[str, int] = {"ipv4": int(socket.AF_INET), "ipv6": int(socket.AF_INET6)}
TYPECHARS: dict[str, int] = {"4": int(socket.AF_INET), "6": int(socket.AF_INET6)}
NAME_FIELDS = frozenset({"fd.cip.name", "fd.sip.name", "fd.lip.name", "fd.rip.name"})
SOCK_STREAM = int(socket.SOCK_STREAM)
# field -> (what it reads, which end: "either", "client", "server", "local", "remote")
_ENDS = {"ip": "either", "net": "either", "port": "either", "cip": "client", "cnet": "client",
         "cport": "client", "sip": "server", "snet": "server", "sport": "server",
         "lip": "local", "lnet": "local", "lport": "local", "rip": "remote", "rnet": "remote",
         "rport": "remote"}  # fmt: skip
_EQ_OPS = ("=", "==", "in")


def _end(field: str, evttype: str) -> str:
    """The tuple end (local, remote, either) that an ``fd.<field>`` reads on this event."""
    end = _ENDS[field]
    if end in ("client", "server"):
        return "local" if (end == "server") == (evttype in SERVER_EVENTS) else "remote"
    return end


def _values(name: str, strings: tuple[str, ...]) -> tuple[str, ...] | None:
    """The constants as networks (``ip/len`` text) or ports; None if one does not parse."""
    out: list[str] = []
    for s in strings:
        try:
            if name.endswith("port"):  # a PORT constant wraps to 16 bits, as the evaluator's
                out.append(str(int(s, 10) % 65536))
            elif name.endswith("net"):
                out.append(str(ipaddress.ip_network(s, strict=False)))
            else:
                out.append(str(ipaddress.ip_network(ipaddress.ip_address(s))))
        except ValueError:
            return None
    return tuple(sorted(set(out)))


def _one_of(kind: str, codes: set[int], positive: bool) -> Dnf:
    """``value in codes`` as atoms (an impossible code when none can hold on an inet socket)."""
    atoms = [Atom(kind, value=c) for c in sorted(codes)] or [Atom(kind, value=0)]
    if positive:
        out = FALSE
        for a in atoms:
            out = dnf_or(out, lit(a))
        return out
    clause = frozenset((a, False) for a in atoms)
    return frozenset({clause})


def _domain(op: str, strings: tuple[str, ...], neg: bool) -> Dnf:
    """``evt.arg.domain op X`` on ``socket``: its rendered family (``AF_INET``, ``AF_INET6``)."""
    from detector.rules.fields.render import render_param

    tests = {"=": str.__eq__, "==": str.__eq__, "!=": str.__ne__, "contains": str.__contains__,
             "startswith": str.startswith, "endswith": str.endswith}  # fmt: skip
    if op == "in":
        hit = {f for f in FAMILIES.values() if render_param("socket", "domain", f) in strings}
    elif op in tests and len(strings) == 1:
        hit = {f for f in FAMILIES.values()
               if tests[op](render_param("socket", "domain", f), strings[0])}  # fmt: skip
    else:
        return TRUE
    if neg:
        hit = set(FAMILIES.values()) - hit
    return _one_of("fam", hit, True)


def sock_atom(name: str, op: str, strings: tuple[str, ...], evttype: str, neg: bool) -> Dnf | None:
    """Atoms of socket events; None when the field is no socket one here."""
    positive = (op != "!=") != neg
    if op not in _EQ_OPS and op != "!=" and name != "evt.arg.domain":
        return None
    if op == "!=" and len(strings) != 1:
        return None
    if name in ("fd.typechar", "fd.type"):
        table = TYPECHARS if name == "fd.typechar" else FAMILIES
        return _one_of("fam", {table[s] for s in strings if s in table}, positive)
    if evttype == "socket":
        return _domain(op, strings, neg) if name == "evt.arg.domain" else None
    if name == "fd.l4proto":
        return _one_of("l4", {L4_CODES[s] for s in strings if s in L4_CODES}, positive)
    field = name[3:] if name.startswith("fd.") else ""
    if field not in _ENDS:
        return None
    values = _values(field, strings)
    if values is None:
        return TRUE
    kind = "port" if field.endswith("port") else "net"
    return lit(Atom(kind, op=_end(field, evttype), strings=values), positive)


def errno_atom(strings: tuple[str, ...], op: str, neg: bool) -> Dnf | None:
    """``evt.res = ENAME`` (``!=``, ``in``) as tests of the result; None if not errno names."""
    codes = [getattr(errno, s, None) for s in strings]
    if not codes or any(not isinstance(c, int) or errno.errorcode.get(c) != s
                        for c, s in zip(codes, strings, strict=True)):  # fmt: skip
        return None  # not the name Falco renders (an alias such as EWOULDBLOCK never matches)
    if op not in _EQ_OPS and not (op == "!=" and len(codes) == 1):
        return None
    out = FALSE
    for c in codes:
        assert isinstance(c, int)
        out = dnf_or(out, lit(Atom("res", 0xFFFFFFFF, (-c) & 0xFFFFFFFF)))
    if (op != "!=") != neg:
        return out
    return frozenset({frozenset((a, False) for c in out for a, _ in c)})


def name_field(neg: bool) -> Dnf:
    """``fd.sip.name`` and the like: never set by this detector, so every comparison fails."""
    return TRUE if neg else FALSE


def tcp_stream() -> Dnf:
    """The sockets the state can do without (see build.py): inet TCP stream sockets."""
    return frozenset({frozenset({(Atom("stype", value=SOCK_STREAM), True),
                                 (Atom("l4", value=6), True)})})  # fmt: skip


SOCK_KINDS = frozenset({"fam", "stype", "l4", "net", "port"})


__all__ = ["HIST_SERVED", "NAME_FIELDS", "SOCK_EVENTS", "SOCK_KINDS", "SockFacts", "errno_atom",
           "name_field", "sock_atom", "sock_holds", "tcp_stream"]
