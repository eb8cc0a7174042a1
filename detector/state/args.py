"""Event argument values as the state reads them: typed, or None when absent or of another type."""

from __future__ import annotations

from typing import Any

from detector.events import Event


def arg(ev: Event, key: str) -> Any:
    """An event value by Falco's parameter name, else from the kernel context."""
    v = ev.args.get(key)
    if v is None and ev.ctx is not None:
        v = ev.ctx.get(key)
    return v


def as_int(v: Any) -> int | None:
    """``v`` if it is an int (not a bool), else None."""
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def as_str(v: Any) -> str | None:
    """``v`` as text (bytes decoded, bad bytes replaced) if it is text, else None."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v if isinstance(v, str) else None
