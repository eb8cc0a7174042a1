"""The compiled read loop against the pure-Python one: equal Events for any record, and the same
walk of a crafted ring buffer (no kernel, no root)."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import DetectorError
from detector.events import Event
from detector.sources import decode as dec
from detector.sources import fast
from detector.sources.syscall_nrs import NUMBERS
from detector.sources.syscalls import NR_PROCEXIT
from tests.detector.bpf.test_ringbuf import PAGE, SIZE
from tests.detector.sources.decoders import NAMES, consume, decoder, need_compiled

NRS = sorted({*dec.EVENTS_BY_NR, NUMBERS["getppid"], 999})  # every decoded type, two unknown
STRINGS = st.binary(max_size=40) | st.sampled_from([b"/etc/shadow\0", b"\xff\xfe\0\0", b"a\0b\0"])


SOCKADDRS = st.sampled_from([
    b"", b"\x02", b"\x02\x00\x01\xbb\x7f\x00\x00\x01", b"\x02\x00\x01\xbb\x7f",
    b"\x01\x00/run/x\0", b"\x01\x00\0hidden\0z", b"\x01\x00", b"\x01\x00\xff\xfe",
    b"\x0a\x00\x00\x50" + bytes(4) + bytes(15) + b"\x01", b"\x0a\x00\x00\x50" + bytes(10),
    b"\x10\x00abc",
]) | st.binary(max_size=30)
NAMES_96 = st.sampled_from([b"", b"/", b"libpod-ab12\0", b"\xffbad\0", b"x" * 96, b"user.slice"])


@st.composite
def procs(draw: st.DrawFn) -> bytes:
    """A ``struct proc_ctx`` with random ids, capabilities, exe facts and cgroup names."""
    u32, u64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
    i64 = st.integers(-(2**63), 2**63 - 1)
    return dec.PROC.pack(
        *(draw(u32) for _ in range(8)), *(draw(u64) for _ in range(4)), draw(i64), draw(i64),
        draw(u32), draw(st.integers(0, 3)), draw(u64), draw(st.sampled_from([0, 1, 4_999, 5_000,
                                                                              2**62, 2**64 - 1])),
        draw(st.sampled_from([b"", b"memfd:x\0", b"memfd\0", b"cc1\0", b"\xfe" * 32])),
        *(draw(NAMES_96) for _ in range(4)),
    )  # fmt: skip


KINDS = (0, 0, 0, 1, 2, 4, 7, 17)  # 17: a vfork child's event (K_PROC | K_VFORK)


@st.composite
def records(draw: st.DrawFn, nrs: list[int] = NRS, kinds: tuple[int, ...] = KINDS,
            strings: st.SearchStrategy[bytes] = STRINGS, sockaddrs: bool = True) -> bytes:
    """A record as the BPF programs write it, with random contents for the type."""
    nr = draw(st.sampled_from(nrs))
    kind = draw(st.sampled_from(kinds))
    strs = [draw(strings) for _ in range(draw(st.integers(0, 3)))]
    sa = draw(SOCKADDRS) if sockaddrs else b""
    lens = [len(s) for s in strs] + [0] * (3 - len(strs)) + [len(sa)]
    u64 = st.integers(0, 2**64 - 1)
    hdr = dec.HDR.pack(
        draw(st.integers(0, 2**62)), draw(u64), draw(st.integers(-(2**63), 2**63 - 1)),
        *(draw(u64) for _ in range(6)), draw(u64), nr, draw(st.integers(0, 2**32 - 1)), *lens,
        kind, 0, draw(st.integers(0, 2**32 - 1)), draw(st.binary(min_size=16, max_size=16)),
        *(draw(u64) for _ in range(3)),
    )  # fmt: skip
    proc = draw(procs()) if kind & 1 else b""
    tup = b""
    if kind & 2:
        u16 = st.integers(0, 65535)
        tup = dec.TUPLE.pack(draw(st.sampled_from([2, 10, 1])), draw(u16),
                             draw(st.sampled_from([6, 17, 1, 58, 255, 0, 99])), draw(u16),
                             draw(u16), draw(u16), draw(st.integers(0, 2**32 - 1)),
                             draw(st.binary(min_size=16, max_size=16)),
                             draw(st.binary(min_size=16, max_size=16)))  # fmt: skip
    return hdr + proc + tup + b"".join(strs) + sa


@settings(max_examples=400, deadline=None)
@given(rec=records(), pad=st.integers(0, 9), boot=st.integers(0, 2**61))
def test_compiled_and_python_decode_any_record_alike(rec: bytes, pad: int, boot: int) -> None:
    need_compiled()
    buf = bytearray(b"\xaa" * pad + rec)
    try:
        want = dec.decode(buf, 7, boot, pad)
    except Exception as exc:  # a malformed record: the compiled path refuses it alike
        with pytest.raises(type(exc)):
            fast.decode_compiled(buf, 7, boot, pad)
        return
    got = fast.decode_compiled(buf, 7, boot, pad)
    assert got == want and got.ctx == want.ctx


ARGV = st.lists(st.sampled_from([b"", b"\0", b"sh", b"-c", b"\xff\xfe", b"\xed\xb2\x80", b"\0\0",
                                 b"caf\xc3\xa9", b"HOME=/root"]), max_size=6).map(b"".join)
EXECS = [NUMBERS["execve"], NUMBERS["execveat"]]


@settings(max_examples=300, deadline=None)
@given(rec=records(EXECS, (1, 5), ARGV, False), boot=st.integers(0, 2**61))
def test_compiled_and_python_decode_execs_alike(rec: bytes, boot: int) -> None:
    """execve/execveat (decoded in C since this session): the same Event, argv split and env
    bytes alike, parameters in the same order (what ``evt.args`` renders)."""
    need_compiled()
    want = dec.decode(rec, 3, boot)
    got = fast.decode_compiled(rec, 3, boot)
    assert got == want and got.ctx == want.ctx
    assert list(got.args) == list(want.args) and list(got.ctx or ()) == list(want.ctx or ())


@pytest.mark.parametrize("name", NAMES)
def test_a_record_cut_short_is_refused_as_in_python(name: str) -> None:
    """A header that does not fit the buffer raises struct.error in both, nothing read past."""
    decode = decoder(name)
    raw = dec.HDR.pack(1, 2, 3, *([0] * 6), 0, NUMBERS["close"], 0, 0, 0, 0, 0, 0, 0, 0,
                       b"x", 0, 0, 0)  # fmt: skip
    with pytest.raises(struct.error):
        decode(raw[:-1], 1, 0, 0)
    with pytest.raises(struct.error):
        decode(raw, 1, 0, 8)


class Ring:
    """A producer writing records as the kernel does (``tests/detector/bpf/test_ringbuf.py``)."""

    def __init__(self) -> None:
        self.cons = bytearray(8)
        self.prod = bytearray(PAGE + 2 * SIZE * 16)
        self.size = SIZE * 16
        self.pos = 0

    def put(self, payload: bytes, flags: int = 0) -> None:
        rec = struct.pack("<II", len(payload) | flags, 0) + payload
        rec += b"\0" * (-len(rec) % 8)
        for i, byte in enumerate(rec):
            at = (self.pos + i) % self.size
            self.prod[PAGE + at] = self.prod[PAGE + self.size + at] = byte
        self.pos += len(rec)
        struct.pack_into("<Q", self.prod, 0, self.pos)


def _close(fd: int, tid: int = 5) -> bytes:
    return dec.HDR.pack(10, 4 << 32 | tid, 0, fd, *([0] * 5), 0, NUMBERS["close"], 1, 0, 0, 0,
                        0, 0, 0, 0, b"sh", 0, 0, 0)  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_consume_walks_wraps_skips_discarded_and_stops_at_busy(name: str) -> None:
    from detector.bpf.ringbuf import BUSY, DISCARD, RingReader

    run = consume(name)
    ring = Ring()
    reader = RingReader(ring.cons, ring.prod, ring.size, data=PAGE)
    for fd in range(6):  # 6 x 152 bytes in a 1 KiB area: the last ones wrap
        ring.put(_close(fd))
    assert [e.args["fd"] for e in run(reader, 4, 1, 0)] == [0, 1, 2, 3]  # the limit
    evs = run(reader, 100, 5, 0)
    assert [(e.num, e.args["fd"]) for e in evs] == [(5, 4), (6, 5)]
    ring.put(_close(70), DISCARD)
    ring.put(dec.HDR.pack(*([0] * 10), NR_PROCEXIT, *([0] * 8), b"", 0, 0, 0))
    busy_at = ring.pos
    ring.put(_close(80), BUSY)
    assert [e.type for e in run(reader, 100, 7, 0)] == ["procexit"]
    assert struct.unpack_from("<Q", ring.cons)[0] == busy_at  # the busy record stays
    struct.pack_into("<I", ring.prod, PAGE + busy_at % ring.size, len(_close(80)))
    assert [e.args["fd"] for e in run(reader, 100, 8, 0)] == [80]
    assert run(reader, 100, 9, 0) == [] and not reader.pending()


def test_decoder_choice() -> None:
    assert fast.consumer("python")[0] == "python"
    with pytest.raises(DetectorError, match="unknown decoder"):
        fast.consumer("fastest")
    need_compiled()
    assert fast.consumer("auto")[0] == "compiled"
    assert fast.consumer("compiled")[1] is fast.consume_compiled


def test_auto_takes_python_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast.ENV_PURE, "1")
    assert fast.consumer("auto")[0] == "python"


def test_an_event_type_the_extension_does_not_know_is_refused() -> None:
    """A changed Event (another field) is refused at setup, so fast.py leaves the loop unused."""
    need_compiled()
    code = (
        "import dataclasses\n"
        "from detector.sources import _lean\n"
        "@dataclasses.dataclass(slots=True)\n"
        "class E:\n"
        "    num: int\n"
        "try:\n"
        "    _lean.setup(E, ('num',), {}, {}, print)\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.startswith("refused: Event has not the fields")
    with pytest.raises(RuntimeError, match="already called"):
        fast.LEAN.setup(Event, (), {}, {}, print)  # type: ignore[union-attr]
