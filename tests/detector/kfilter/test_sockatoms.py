"""Socket atoms: for random conditions over socket fields, every socket/connect/accept event
the rule evaluator matches (on the fd the state tracker builds from the kernel's tuple) is kept
by the kernel's decision; the stable rules' connect filter; which rule sets let TCP sockets go."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import Event, ThreadInfo
from detector.kfilter.atoms import FALSE, dnf_or, over
from detector.kfilter.build import build, tcp_blind
from detector.kfilter.plan import Facts, KernelPlan, Marks, compile_syscall, decide
from detector.kfilter.replay import facts_of, filtered
from detector.rules.eval.codegen import compile_condition
from detector.rules.lang.parser import parse
from detector.rules.load.loader import load_rules_files
from detector.state.fds import FdTracker
from tests.detector.kfilter.kf_parts import conditions

STABLE = Path("/work/shared/falco-rules/falco_rules.yaml")
ENDS = (("10.1.2.3", 40000, "127.0.0.1", 22), ("192.168.1.5", 5555, "8.8.8.8", 443),
        ("0.0.0.0", 0, "0.0.0.0", 0), ("127.0.0.1", 33000, "127.0.0.1", 80),
        ("::1", 41000, "::1", 8080), ("fd00::2", 1, "2001:db8::1", 53),
        ("::ffff:127.0.0.1", 2, "::ffff:10.0.0.1", 4444))  # fmt: skip
ATOMS = st.sampled_from([
    "fd.typechar = 4", "fd.typechar in (4, 6)", "fd.typechar = u", "fd.type = ipv6",
    "fd.l4proto = tcp", "fd.l4proto != udp", "fd.l4proto in (udp, icmp)", "fd.ip = 127.0.0.1",
    "fd.ip != 0.0.0.0", "fd.net = 127.0.0.0/8", "fd.net != 127.0.0.0/8",
    "fd.snet in (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)", "fd.cnet = 10.0.0.0/8",
    "fd.sip = 8.8.8.8", "fd.cip != 10.1.2.3", "fd.lip = ::1", "fd.rnet = 2001:db8::/32",
    "fd.sport in (80, 443, 53)", "fd.cport = 40000", "fd.port = 22", "fd.rport != 443",
    "fd.lport in (1, 2)", "fd.lport != 65537", "fd.sport = 65979",
    "fd.sip.name = kubernetes.default", "fd.cip.name != x",
    "evt.rawres >= 0", "evt.res = EINPROGRESS", "evt.res != ECONNREFUSED",
    "evt.res in (EINPROGRESS, EAGAIN)", "evt.res = EWOULDBLOCK", "proc.name = ssh",
    "evt.arg.domain contains AF_INET", "evt.arg.domain = AF_PACKET", "fd.net = ::ffff:0:0/96",
])  # fmt: skip


def _event(etype: str, ends: tuple[str, int, str, int], ret: int, l4: str) -> Event:
    """A decoded event as the eBPF source makes it (ctx from the kernel tuple), tracked."""
    lip, lport, rip, rport = ends
    fam = "ipv6" if ":" in lip else "ipv4"
    ctx: dict[str, object] = {"sock_family": fam, "l4proto": l4, "lip": lip, "lport": lport,
                              "rip": rip, "rport": rport, "pid": 1}  # fmt: skip
    if etype == "connect":
        args: dict[str, object] = {"fd": 3, "res": ret}
    elif etype == "socket":
        ctx = {"pid": 1}
        args = {"fd": ret, "domain": socket.AF_INET6 if fam == "ipv6" else socket.AF_INET,
                "type": socket.SOCK_STREAM if l4 == "tcp" else socket.SOCK_DGRAM, "proto": 0}
    else:
        args = {"fd": ret}
        if ret < 0:
            ctx = {"pid": 1}
    ev = Event(num=0, ts=0, type=etype, tid=1, res=ret, args=args, ctx=ctx)
    ev.thread = ThreadInfo(tid=1, pid=1, comm="ssh", exe="ssh")
    ev.fd = FdTracker(read_proc=False).handle(ev, ev.thread)
    return ev


def _plan(etype: str, conditions: list[str]) -> KernelPlan:
    plan = KernelPlan()
    dnf = FALSE
    for c in conditions:
        dnf = dnf_or(dnf, over(parse(c), etype))
    compile_syscall(plan, etype, dnf)
    return plan


@settings(max_examples=200, deadline=None)
@given(st.lists(conditions(ATOMS), min_size=1, max_size=3), st.sampled_from(
    ["connect", "accept", "accept4", "socket"]))  # fmt: skip
def test_what_a_rule_matches_on_a_socket_the_kernel_keeps(conditions: list[str],
                                                          etype: str) -> None:  # fmt: skip
    plan = _plan(etype, conditions)
    compiled = [compile_condition(parse(c)) for c in conditions]
    for ends, ret, l4 in itertools.product(ENDS, (0, 5, -115, -111), ("tcp", "udp")):
        ev = _event(etype, ends, ret, l4)
        if any(cc(ev) for cc in compiled):
            assert decide(plan, facts_of(ev)), (conditions, etype, ends, ret, l4)


def _stable(without: tuple[str, ...] = ()) -> list[object]:
    rules = load_rules_files([STABLE]).rules
    return [r for r in rules if r.name not in without]


REDIRECT = "Redirect STDOUT/STDIN to Network Connection in Container"
SOCKETS = {"socket", "connect", "accept", "accept4", "close", "dup2", "sendto"}


def test_the_stable_rules_drop_tcp_sockets_whose_fd_the_redirect_rule_reads_at_dup() -> None:
    """The redirect rule reads a TCP socket's fd only at dup, whose record carries the
    socket's history: the stable rules' plan drops TCP sockets, and says why."""
    b = build(_stable(), SOCKETS)
    assert b.sock_readers == []
    assert not b.plan.filter_of("connect").keep_all
    assert REDIRECT in b.types["connect"].state and "at dup" in b.types["connect"].state
    from detector.kfilter.build import sock_readers
    from detector.sources.syscalls import SUPPORTED

    assert sock_readers(_stable(), SUPPORTED, served=frozenset()) == [REDIRECT]


def test_without_the_redirect_rule_tcp_sockets_go_with_their_closes() -> None:
    plan = build(_stable((REDIRECT,)), SOCKETS).plan
    connect = plan.syscalls["connect"]
    assert not connect.keep_all and connect.sock_atoms
    loopback = _event("connect", ("127.0.0.1", 40000, "127.0.0.1", 443), 0, "tcp")
    outside = _event("connect", ("192.0.2.2", 40000, "8.8.8.8", 443), -115, "tcp")
    private = _event("connect", ("192.0.2.2", 40000, "10.0.0.1", 443), 0, "tcp")
    udp = _event("connect", ("127.0.0.1", 40000, "127.0.0.1", 53), 0, "udp")
    assert not decide(plan, facts_of(loopback))
    assert decide(plan, facts_of(outside))  # the SSH rule's outbound, on port 443
    assert not decide(plan, facts_of(private))
    assert decide(plan, facts_of(udp))  # outbound's sendto branch reads UDP sockets
    sock = _event("socket", ("0.0.0.0", 0, "0.0.0.0", 0), 3, "tcp")
    accept = _event("accept", ("127.0.0.1", 80, "127.0.0.1", 40000), 4, "tcp")
    close3 = Event(num=0, ts=0, type="close", tid=1, res=0, args={"fd": 3}, ctx={"pid": 1})
    close4 = Event(num=0, ts=0, type="close", tid=1, res=0, args={"fd": 4}, ctx={"pid": 1})
    kept = list(filtered(plan, [sock, loopback, accept, close3, close4]))
    assert kept == []


def test_a_kept_connect_keeps_the_close_of_its_socket() -> None:
    plan = build(_stable((REDIRECT,)), SOCKETS).plan
    marks = Marks()
    sock = facts_of(_event("socket", ("0.0.0.0", 0, "0.0.0.0", 0), 3, "tcp"))
    assert not marks.keep(plan, sock, 1)
    outside = facts_of(_event("connect", ("192.0.2.2", 40000, "8.8.8.8", 443), -115, "tcp"))
    assert outside.fds_made == (3,) and marks.keep(plan, outside, 1)
    assert marks.keep(plan, Facts("close", 0, fd_arg=3), 1)  # the tracker made an entry


def test_a_packet_socket_is_kept_for_its_rule() -> None:
    plan = build(_stable((REDIRECT,)), SOCKETS).plan
    packet = Facts("socket", 3, sock=None)  # AF_PACKET: no inet socket in the kernel
    assert decide(plan, packet)


def test_tcp_blindness_reads_the_branches_that_can_hold() -> None:
    rules = {r.name: r for r in load_rules_files([STABLE]).rules}
    ssh = rules["Disallowed SSH Connection Non Standard Port"].tree
    assert ssh is not None
    assert tcp_blind(ssh, "sendto") and not tcp_blind(ssh, "connect")
    assert not tcp_blind(parse("fd.l4proto != udp"), "sendto")
    assert tcp_blind(parse("fd.l4proto in (udp, raw) or (fd.l4proto = icmp)"), "sendto")


def test_dns_name_fields_are_never_set_so_comparisons_fail() -> None:
    assert over(parse("fd.sip.name = kubernetes.default.svc.cluster.local"), "connect") == FALSE
    assert over(parse("not fd.sip.name = x"), "connect") != FALSE


def test_a_port_constant_wraps_to_16_bits_as_the_evaluator_reads_it() -> None:
    for cond in ("fd.lport = 65537", "not fd.lport != 65537", "fd.port in (65537)"):
        ev = _event("connect", ("fd00::2", 1, "2001:db8::1", 53), 0, "tcp")
        assert compile_condition(parse(cond))(ev), cond
        assert decide(_plan("connect", [cond]), facts_of(ev)), cond
