"""Where the runtime's events come from: the syscall source ``engine.kind`` picks (the kernel
through BCC, a capture replay, or none) and the container runtimes the state tracker asks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from detector.config import FalcoConfig
from detector.events import Event
from detector.runtime.protocols import EventSource
from falcoctl_py.errors import DetectorError

if TYPE_CHECKING:
    from detector.state.runtimes.engines import Engines


class IterableSource:
    """A plain iterable of events as an :class:`EventSource` (a replay ends at its end)."""

    def __init__(self, events: Iterable[Event | None]) -> None:
        self._events = events

    def __iter__(self) -> Iterator[Event | None]:
        return iter(self._events)

    def stop(self) -> None:
        """Nothing to do: the loop checks for a stop between events."""

    def close(self) -> None:
        """Nothing held."""


def syscall_source(
    config: FalcoConfig, event_types: frozenset[str] | None, rules: tuple[object, ...] = (),
) -> EventSource | None:
    """The syscall source of ``engine.kind``: a replay, the kernel (its kernel filters from
    ``rules``), or None (``nodriver``)."""
    if config.engine.kind == "replay":
        from detector.sources.replay import ReplaySource

        path = config.engine.replay.capture_file
        if not path:
            raise DetectorError("engine.kind is replay but engine.replay.capture_file is "
                                "empty", hint="-o engine.replay.capture_file=FILE")
        return IterableSource(ReplaySource(path))
    if config.engine.runs_ebpf:
        from detector.feeds import SyscallFeed

        return SyscallFeed(config, event_types, rules)
    return None


def container_engines(config: FalcoConfig) -> Engines | None:
    """Runtime sockets from the ``container`` plugin's ``init_config`` in falco.yaml, as
    Falco's container plugin reads them (``engines.<name>.enabled|sockets``)."""
    from detector.state.runtimes.engines import engines_from_init_config
    from falcoctl_py.bounded import loads_json

    for plugin in config.plugins:
        if plugin.name == "container" and plugin.init_config.strip():
            where = "falco.yaml: plugins[container].init_config"
            try:
                init = loads_json(plugin.init_config, where=where)
            except ValueError as err:
                raise DetectorError(f"{where}: not valid JSON ({err})") from None
            return engines_from_init_config(init if isinstance(init, dict) else None)
    return None  # the tracker's default sockets
