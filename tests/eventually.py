"""One helper for "wait until this becomes true": the only deadline loop the tests need."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NotYet(AssertionError):
    """The condition did not hold before the deadline; the message says what was last seen."""


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns a truthy value (returned) or ``timeout`` seconds pass.

    An ``AssertionError`` raised by the probe counts as "not yet"; the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise NotYet(f"{what} not reached within {timeout:g} s (last: {last!r})")
        time.sleep(interval)
