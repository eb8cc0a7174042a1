"""Types of the compiled hot loop (detector/sources/_lean.c)."""

from collections.abc import Callable
from typing import Any, overload

from detector.events import Event, ThreadInfo

def setup(event_type: type[Event], fields: tuple[str, ...],
          table: dict[int, tuple[str, tuple[tuple[str, str, int], ...]]],
          families: dict[int, tuple[str, int]],
          fallback: Callable[[Any, int, int, int], Event]) -> None: ...
def decode(buffer: Any, num: int, boot: int, pos: int) -> Event: ...
def apply_ctx(th: ThreadInfo, args: dict[str, Any], ctx: dict[str, Any] | None) -> None: ...
def exe_facts(th: ThreadInfo, args: dict[str, Any], ctx: dict[str, Any] | None) -> bool: ...
@overload
def consume(buffer: Any, base: int, mask: int, cons_pos: int, prod_pos: int, limit: int,
            first: int, boot: int) -> tuple[list[Event], int]: ...
@overload
def consume(buffer: Any, base: int, mask: int, cons_pos: int, prod_pos: int, limit: int,
            first: int, boot: int, ts_limit: int) -> tuple[list[Event], int, bool, int]: ...
@overload
def consume(buffer: Any, base: int, mask: int, cons_pos: int, prod_pos: int, limit: int,
            first: int, boot: int, ts_limit: int,
            scan: bool) -> tuple[list[Any], int, bool, int]: ...
