"""Both read loops of the eBPF source, for tests that run every case on each."""

from __future__ import annotations

from collections.abc import Callable

from detector.events import Event
from detector.sources import decode as dec
from detector.sources import fast
from tests.realparts import need

NAMES = ("python", "compiled")


def need_compiled() -> None:
    """Skip (fail under FALCOCTL_PY_REQUIRE_REAL=1) when the C extension is not built."""
    need(fast.LEAN is not None, f"the compiled decoder detector.sources._lean: {fast.WHY_NOT}")


def decoder(name: str) -> Callable[..., Event]:
    """``decode(buffer, num, boot, pos)`` of the named loop."""
    if name == "compiled":
        need_compiled()
        return fast.decode_compiled
    return dec.decode


def consume(name: str) -> fast.Consume:
    """``consume(reader, limit, first, boot)`` of the named loop."""
    if name == "compiled":
        need_compiled()
    return fast.consume_compiled if name == "compiled" else fast.consume_python

