"""The state tracker: fills ``Event.thread`` and ``Event.fd`` and keeps the tables up to date.

``StateTracker.process(event)`` is on the hot path (every event goes through it): one dict
lookup for the thread, one for the event type's state handler, one for the fd.

Kernel context keys read from ``Event.ctx`` (all optional; /proc fills what is missing):
``pid`` (tgid), ``ppid`` (``task->real_parent`` tgid: relinks the thread when it differs),
``comm``, ``uid``, ``gid``, ``loginuid``, ``sid``, ``tty``, ``vpgid``, ``cgroup`` (a
/proc/PID/cgroup style text or one path), ``cap_effective``/``cap_permitted``/
``cap_inheritable`` (bit masks), ``exepath``, ``filename``, ``exe_upper_layer``,
``exe_from_memfd``, ``exe_writable``, ``exe_ino``, ``clone_flags`` (raw kernel flags),
``child_pid``, ``local`` (the local end of a socket). Values in ``Event.args`` under Falco's
parameter names take precedence (``exe``, ``args``, ``cwd``, ``tty``, ``loginuid``, ``comm``,
``trusted_exepath``, ``cap_*``, ``uid``, ``gid``, ``env``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from detector.events import ContainerInfo, Event, FdInfo, ThreadInfo
from detector.state.containers import ContainerManager
from detector.state.fds import FdTracker
from detector.state.runtimes.engines import Engines
from detector.state.threads import (
    CLONE_EVENTS,
    EXEC_EVENTS,
    EXIT_EVENTS,
    GID_EVENTS,
    UID_EVENTS,
    ThreadTable,
)
from detector.state.users import UserTable

# Seconds the exec of a container's init (vpid 1) waits for the container's metadata, once per
# container: a runtime's API or storage answers in milliseconds; a slow one costs a start this
# much, never more, and the ring buffer holds the events meanwhile.
INIT_WAIT = 0.5


class StateTracker:
    """Threads, fds, containers and users, kept from a /proc scan and the event stream."""

    def __init__(
        self,
        *,
        proc_root: str = "/proc",
        container_sockets: Iterable[tuple[str, str]] | None = None,
        engines: Engines | None = None,
        container_first_wait: float = 0.0,
        container_init_wait: float = INIT_WAIT,
        fetch_containers: bool = True,
        read_proc: bool = True,
        max_threads: int = 65536,
    ) -> None:
        self.containers = ContainerManager(
            sockets=container_sockets, engines=engines, first_wait=container_first_wait,
            fetch=fetch_containers,
        )
        self.users = UserTable(proc_root=proc_root)
        self.threads = ThreadTable(
            containers=self.containers, users=self.users, proc_root=proc_root,
            max_threads=max_threads, read_proc=read_proc,
        )
        self.fds = FdTracker(proc_root=proc_root, read_proc=read_proc)
        t = self.threads
        self._before: dict[str, Callable[[Event, ThreadInfo], None]] = {}
        self._after: dict[str, Callable[[Event, ThreadInfo], None]] = {}
        for name in CLONE_EVENTS:
            self._after[name] = t.on_clone
        for name in EXEC_EVENTS:
            self._before[name] = t.on_exec
        for name in EXIT_EVENTS:
            self._after[name] = t.on_exit
        for name in UID_EVENTS | GID_EVENTS:
            self._before[name] = t.on_setid
        self._before["chdir"] = t.on_chdir
        self._before["fchdir"] = t.on_chdir
        self._fd_handle = self.fds.handle
        # the types with no thread handler and no exec: their fd handler alone (filled as met)
        self._special = frozenset(self._before) | frozenset(self._after) | EXEC_EVENTS
        self._plain: dict[str, Callable[[Event, ThreadInfo], FdInfo | None]] = {}
        self._threads = t.threads  # the table's dict, bound once for process()
        self.unknown_threads = 0
        self.pending: list[Event] = []  # ``container`` events made by process(), not yet taken
        self.container_events = True
        self.container_init_wait = container_init_wait

    def scan(self) -> int:
        """Read the running system from /proc; returns the number of threads known."""
        n = self.threads.scan()
        for c in self.containers.known():
            self.containers.is_new(c.id)  # running before the detector: no container event
        return n

    def process(self, ev: Event) -> Event:
        """Attach ``thread`` and ``fd`` to ``ev`` and apply what it changes to the state."""
        th = self._threads.get(ev.tid)
        if th is None:
            th = self.threads.get(ev.tid, ev)
            if th is None:
                self.unknown_threads += 1
                return ev
        ctx = ev.ctx
        if ctx is not None:
            ppid = ctx.get("ppid")
            if ppid is not None and ppid != th.ppid and type(ppid) is int:
                self.threads.relink(th, ppid)
        etype = ev.type
        plain = self._plain.get(etype)
        if plain is not None:
            ev.thread = th
            ev.fd = plain(ev, th)
            return ev
        if etype not in self._special:
            self._plain[etype] = self.fds.handler_for(etype)
        before = self._before.get(etype)
        if before is not None:
            before(ev, th)
            th = self._threads.get(ev.tid, th)
        ev.thread = th
        ev.fd = self._fd_handle(ev, th)
        after = self._after.get(etype)
        if after is not None:
            after(ev, th)
        elif etype in EXEC_EVENTS:
            th = ev.thread or th
            if self.container_events:
                self._container_started(ev, th)
            if th.vpid == 1 and not th.container.is_host and ev.res in (0, None):
                self.containers.settle(th.container.id, self.container_init_wait)
        return ev

    def _container_started(self, ev: Event, th: ThreadInfo) -> None:
        """Falco's ``container`` event, once per container, before its first process's exec."""
        c = th.container
        if c.is_host or ev.res not in (0, None) or not self.containers.is_new(c.id):
            return
        self.containers.started(c.id)
        self.pending.append(Event(
            num=ev.num, ts=ev.ts, type="container", tid=ev.tid, dir=">", cpu=ev.cpu, res=0,
            args={"id": c.id, "type": c.type}, thread=th, source=ev.source,
        ))

    def stream(self, events: Iterable[Event | None]) -> StateStream:
        """``events`` with state applied and ``container`` events put before their exec."""
        return StateStream(events, self)

    def put_thread(self, th: ThreadInfo) -> None:
        """Add a thread known from elsewhere (a capture file)."""
        self.threads.threads[th.tid] = th

    def put_container(self, info: ContainerInfo) -> None:
        """Add a container known from elsewhere (a capture file)."""
        self.containers.put(info)

    def close(self) -> None:
        """Stop background work (the container metadata thread)."""
        self.containers.close()


class StateStream:
    """Events through a :class:`StateTracker`, with the ``container`` events it makes.

    Event numbers stay unique: each injected event takes the next number and the events after
    it are shifted by as many. Idle heartbeats (``None``) pass through.
    """

    def __init__(self, source: Iterable[Event | None], tracker: StateTracker) -> None:
        self.source = source
        self.tracker = tracker

    @property
    def drains_on_stop(self) -> bool:
        return bool(getattr(self.source, "drains_on_stop", False))

    def __iter__(self) -> Iterator[Event | None]:
        tracker = self.tracker
        process = tracker.process
        pending = tracker.pending
        shift = 0
        for ev in self.source:
            if ev is None:
                yield None
                continue
            if shift:
                ev.num += shift
            ev = process(ev)
            if pending:
                for extra in pending:
                    extra.num = ev.num
                    shift += 1
                    ev.num += 1
                    yield extra
                pending.clear()
            yield ev
