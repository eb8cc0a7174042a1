"""The seams of the runtime: what it asks of an event source, a state tracker, a service and
the rules engine. Each is a small protocol, so parts can be swapped (the kernel, a capture, a
plugin, a test's own source) without the runtime probing them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from detector.events import Event, ThreadInfo


@runtime_checkable
class EventSource(Protocol):
    """Events in order; ``None`` is an idle heartbeat (the loop ticks and checks for a stop)."""

    def __iter__(self) -> Iterator[Event | None]: ...

    def stop(self) -> None:
        """Ask the iteration to end soon (any thread)."""

    def close(self) -> None:
        """Release what the source holds (after the iteration ended)."""


@runtime_checkable
class CountingSource(Protocol):
    """A source that counts what it saw and dropped (the kernel, a test's source)."""

    def stats(self) -> dict[str, int]:
        """``{"n_evts": ..., "n_drops": ...}`` since it opened."""


@runtime_checkable
class SyscallSelecting(Protocol):
    """A source whose captured syscalls follow the rules (the kernel)."""

    def set_syscalls(self, names: set[str]) -> None: ...


@runtime_checkable
class DrainingSource(Protocol):
    """A source that hands over what it buffered after a stop (the loop runs to its end)."""

    drains_on_stop: bool


class StateTracker(Protocol):
    """Keeps process, file and container state; gives each event its thread."""

    def process(self, event: Event) -> Event: ...

    def stream(self, events: Iterable[Event | None]) -> Iterable[Event | None]:
        """``events`` with state applied (and Falco's ``container`` events added)."""
        ...

    def close(self) -> None: ...


class ThreadRows(Protocol):
    """A threads table: ``threads`` maps tid to the thread."""

    @property
    def threads(self) -> Mapping[int, ThreadInfo]: ...


@runtime_checkable
class ThreadKeeping(Protocol):
    """A state tracker whose threads plugins may read (the ``threads`` table of the plugin
    API)."""

    @property
    def threads(self) -> ThreadRows: ...


class Engine(Protocol):
    """The rules: the alerts one event raises."""

    def process(self, event: Event) -> list[object]: ...


class Service(Protocol):
    """Something that runs beside the event loop (web server, watcher, follower)."""

    def stop(self) -> None: ...


class CaptureSink(Protocol):
    """Where ``--capture`` records events."""

    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...
