"""``falcoctl-py rules filters``: what a kernel filter derived from rules files keeps, in words."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from detector.kfilter.atoms import FALSE, TRUE, Atom, Dnf
from detector.kfilter.plan import CMD_SOURCES, RET_SOURCES, UBUF_FDS, SyscallFilter

NAMES_SHOWN = 8  # comm names listed per set before "and N more"
DNS_NEVER = ("nothing: it compares fd.sip.name/fd.cip.name/fd.lip.name/fd.rip.name, which this "
             "detector never sets (no DNS name matching), so that comparison is false")


@dataclass(frozen=True, slots=True)
class TypeReport:
    """One event type: what the kernel keeps, which rules match it, what the state needs."""

    evttype: str
    keeps: str
    filtered: bool
    rules: tuple[str, ...]
    unfiltered_by: tuple[str, ...]
    contributions: tuple[tuple[str, str], ...]  # (rule, what it alone would keep)
    state: str  # what the state tables need of it ("" for nothing)


def _names(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = names[:NAMES_SHOWN]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


_SOCK_WORDS = {2: "IPv4", 10: "IPv6", 1: "a stream", 6: "TCP", 17: "UDP", 255: "raw"}


def _sock_literal(atom: Atom) -> str:
    """A socket atom in words (sockatoms.py)."""
    end = {"either": "either end's", "local": "the local", "remote": "the remote"}.get(atom.op, "")
    if atom.kind == "net":
        return f"{end} address is in {_names(atom.strings)}"
    if atom.kind == "port":
        return f"{end} port is one of {_names(atom.strings)}"
    word = _SOCK_WORDS.get(atom.value)
    if word is None:
        return f"the socket's {atom.kind} is {atom.value} (never, on an IPv4/IPv6 socket)"
    return "the socket is " + {"fam": "an {} one", "stype": "{} one", "l4": "a {} one"}[
        atom.kind].format(word)  # fmt: skip


def _literal(atom: Atom, positive: bool) -> str:
    if atom.kind in ("fam", "stype", "l4", "net", "port"):
        text = _sock_literal(atom)
        return text if positive else f"not ({text})"
    text = {
        "res": f"the result is -{errno.errorcode.get((1 << 32) - atom.value, '?')}",
        "ok": "the syscall succeeded",
        "dir": "it opened a directory",
        "zero": "the result is 0 (the child's side)",
        "comm": f"proc.name is one of {_names(atom.strings)} (not checked in the kernel)",
        "flags": f"flags & {atom.mask:#o} == {atom.value:#o}",
        "cmd": f"the command is {atom.value}",
    }.get(atom.kind) or {"eq": "the path is one of", "prefix": "the path starts with one of",
                         "suffix": "the path ends with one of",
                         "contains": "the path contains one of"}[atom.op] + " " + _names(
        atom.strings)  # fmt: skip
    return text if positive else f"not ({text})"


def describe_dnf(dnf: Dnf) -> str:
    """A DNF in words."""
    if dnf == FALSE:
        return "nothing (no rule can match)"
    if dnf == TRUE:
        return "every event"
    parts = [" and ".join(_literal(a, p) for a, p in sorted(c)) for c in sorted(dnf, key=sorted)]
    return "events where " + " | or ".join(f"({p})" for p in parts)


def _kernel(sf: SyscallFilter | None) -> str:
    if sf is None:
        return "every event"
    dirs = "; the records carry the path of a directory it dropped" if sf.dirpaths else ""
    if sf.keep_all:
        return (f"every event ({sf.reason})" if sf.reason else "every event") + dirs
    extra = "; a close of an fd whose open it dropped goes too" if sf.mark_drops else ""
    if sf.mark_drops and sf.evttype in UBUF_FDS:
        extra = "; the closes of the two fds of a pipe it dropped go too"
    if sf.dirpaths:
        extra += ("; keeps the paths of the directories it drops, judges names relative to "
                  "them on the joined path, and gives that path to the records it keeps")
    if sf.dirfd:
        extra = "; an F_DUPFD it dropped (of a directory it has the path of) marks its new fd"
    if sf.close_marks:
        extra = "; drops the closes of fds whose open it dropped"
    tests = "command tests" if sf.evttype in CMD_SOURCES else (
        "result tests" if sf.evttype in RET_SOURCES else "flag tests")  # fmt: skip
    if sf.sock_atoms:
        extra = f" and {len(sf.sock_atoms)} socket atoms (the kernel socket's family, type, " \
            "protocol, addresses, ports)" + extra
    return f"{len(sf.clauses)} clauses of {len(sf.flag_atoms)} {tests}" + (
        " and path atoms" * sf.uses_path) + (" (suffixes too)" * sf.uses_suffix) + extra


def filters(*, paths: Sequence[str | os.PathLike[str]]) -> list[TypeReport]:
    """Load the rules files and describe the kernel filter of every event type they select."""
    from detector.kfilter.build import build
    from detector.rules.load.loader import load_rules_files
    from detector.sources.syscalls import select_syscalls

    ruleset = load_rules_files(paths)
    events: set[str] = set()
    for r in ruleset.rules:
        if r.enabled and r.source == "syscall" and r.evttypes:
            events |= set(r.evttypes)
    b = build(ruleset.rules, select_syscalls(events))
    out = []
    for t, td in b.types.items():
        if not td.rules and not td.dns_never and not (
                t in b.plan.syscalls and not b.plan.syscalls[t].keep_all):  # fmt: skip
            continue
        sf = b.plan.syscalls.get(t)
        out.append(TypeReport(
            t, f"{describe_dnf(td.dnf)}; in the kernel: {_kernel(sf)}",
            sf is not None and not sf.keep_all, tuple(td.rules), tuple(td.unfiltered_by),
            tuple((r, describe_dnf(b.contributions[(r, t)])) for r in td.rules) + tuple(
                (r, DNS_NEVER) for r in td.dns_never), td.state))  # fmt: skip
    return out
