"""Fields in their cheaper forms (inline, or for a known event type) give what the general
helpers give, on every open flag form, descriptor type and path shape."""

from __future__ import annotations

import itertools

import pytest

from detector.events import Event, FdInfo, ThreadInfo
from detector.rules.eval.codegen import compile_condition
from detector.rules.eval.dispatch import RuleIndex
from detector.rules.eval.reference import ReferenceEvaluator
from detector.rules.fields.extract import SIMPLE, make_extractor
from detector.rules.fields.helpers import HELPERS
from detector.rules.lang.parser import parse

TYPES = ["open", "openat", "openat2", "open_by_handle_at", "creat", "read", "close"]
FLAGS = [0, 1, 2, 3, 0o101, 0o102, 0o2000002, None, True, "O_RDWR"]
FDS = [None, *(FdInfo(3, t, n, n) for t, n in itertools.product(
    ["file", "directory", "memfd", "ipv4", "unix"], ["/a/b", "/", "/x", "x", "", "memfd:y"]))]


def _events() -> list[Event]:
    th = ThreadInfo(tid=5, pid=5, comm="cat")
    out = []
    for etype, flags, fd in itertools.product(TYPES, FLAGS, FDS):
        args: dict[str, object] = {"name": "/a/b", "fd": 3}
        if flags is not None:
            args["flags"] = flags
        out.append(Event(num=1, ts=1, type=etype, tid=5, res=3, thread=th, fd=fd, args=args))
    return out


@pytest.mark.parametrize("cond", [
    "evt.is_open_read = true", "evt.is_open_write = true", "evt.is_open_read = false",
    "evt.is_open_write = true and evt.is_open_read = true", "fd.typechar = f",
    "fd.typechar in (d, u)", "fd.directory = /a", "fd.directory = /", "fd.directory exists",
    "fd.directory in (/a, /x)", "evt.is_open_read = true and fd.directory = /a",
])
def test_the_matcher_of_each_type_agrees_with_the_reference(cond: str) -> None:
    node = parse(cond)
    cc = compile_condition(node)
    ref = ReferenceEvaluator(node)
    index = RuleIndex([("r", cc)], first=True)
    for ev in _events():
        want = ref(ev)
        assert index.match(ev) == (("r",) if want else ()), (cond, ev.type, ev.args, ev.fd)
        assert cc(ev) == want


def test_inline_fd_directory_and_typechar_equal_their_helpers() -> None:
    fddir = make_extractor(SIMPLE["fd.directory"])
    typechar = make_extractor(SIMPLE["fd.typechar"])
    helper = HELPERS["_h_fddir"]
    assert callable(helper)
    for ev in _events():
        assert fddir(ev) == helper(ev.fd), ev.fd
        assert typechar(ev) == (None if ev.fd is None else ev.fd.typechar)


# -- a rule's top-level ``and`` chain runs cheapest check first ---------------------------------

def _malformed() -> Event:
    """An event whose ``proc.args`` cannot be read (an arg that is not text): reading raises."""
    th = ThreadInfo(tid=5, pid=5, comm="bash")
    th.args = [1]  # type: ignore[list-item]
    return Event(num=1, ts=1, type="openat", tid=5, res=3, thread=th, args={})


@pytest.mark.parametrize(("cond", "want"), [
    ("proc.args contains x and proc.name = bash", False),  # the read raises: no match
    ("proc.name = bash and proc.args contains x", False),
    ("proc.args contains x and proc.name = zsh", False),
    # under ``not`` the order stays: the raising read keeps the rule from matching
    ("proc.name = bash and not (proc.args contains x and proc.name = zsh)", False),
    ("proc.name = bash and not (proc.args contains x or proc.name = bash)", False),
    ("proc.name = bash and not proc.name = zsh", True),
])
def test_a_reordered_chain_matches_as_in_order_on_a_malformed_event(cond: str, want: bool) -> None:
    good = compile_condition(parse("proc.name = bash"))
    index = RuleIndex([("r", compile_condition(parse(cond))), ("good", good)], first=False)
    assert index.match(_malformed()) == (("r", "good") if want else ("good",))
