"""The thread table, kept as Falco keeps it: an initial /proc scan, then clone/exec/exit events.

* ``scan()`` reads every thread from /proc (comm, argv, exe path, cwd, tty, session, login uid,
  uids, capabilities, start time, cgroup) and links each process to its real parent
  (``/proc/PID/stat`` gives ``task->real_parent``, field-semantics #6).
* clone/clone3/fork/vfork: the child copies its parent (in the parent's exit event, ``res`` is
  the child's tid). ``CLONE_THREAD`` makes a thread of the same process (sharing fds);
  ``CLONE_PARENT`` (runc starts a container's process so) gives it the caller's parent.
  A ``ppid`` in an event's kernel context is the truth and relinks the thread when it differs.
* execve/execveat (success): comm from the kernel (or the basename of the file name passed,
  field-semantics #4), exe = argv[0], args, exe path, cwd, tty, login uid, capabilities, exe
  facts (overlayfs upper layer, memfd), container again (runc joins the cgroup before exec),
  close-on-exec fds dropped, the other threads of the process gone.
* procexit/exit/exit_group: the thread stays ``linger_ns`` more (late events still find it).
* setuid/setreuid/setresuid/setgid family: uid/gid and user/group; chdir/fchdir: cwd.
* A thread first met after the scan (a vfork child, whose clone return the kernel filter
  drops, at its first kept event) is built from its known parent (or process) and the event's
  kernel context when they vouch for it (``_from_event``), else from /proc, else from the
  event's context alone (it is gone).

The table holds at most ``max_threads`` entries; the oldest are dropped first. What a clone
makes of its child is in ``clones``, what an exec tells of the new image in ``execs``.
"""

from __future__ import annotations

from collections import deque

from detector.events import ContainerInfo, Event, ThreadInfo
from detector.state import procfs
from detector.state.args import arg, as_int, as_str
from detector.state.clones import CLONE_PARENT as CLONE_PARENT  # re-exported
from detector.state.clones import CLONE_THREAD as CLONE_THREAD  # re-exported
from detector.state.clones import (
    child_from_event,
    child_of,
    clone_flags,
    copy_thread,
    inherited_fds,
    started,
)
from detector.state.containers import HOST, CgroupPaths, ContainerManager, parse_cgroup
from detector.state.execs import (
    NO_ID,
    ExePaths,
    apply_ctx,
    command_line,
    exec_comm,
    set_exe_facts,
    set_vids,
    split_env,
)
from detector.state.exefacts import ExeFacts
from detector.state.exefacts import resolve_path as resolve_path  # re-exported
from detector.state.users import UserTable, users_stale

O_CLOEXEC = 0o2000000

CLONE_EVENTS = frozenset({"clone", "clone3", "fork", "vfork"})
EXEC_EVENTS = frozenset({"execve", "execveat"})
EXIT_EVENTS = frozenset({"procexit", "sched_process_exit", "exit", "exit_group"})
UID_EVENTS = frozenset({"setuid", "setreuid", "setresuid", "setfsuid"})
GID_EVENTS = frozenset({"setgid", "setregid", "setresgid", "setfsgid"})
# the argument holding the new (effective) id, per setuid/setgid-family event
_SETID_ARG = {"setuid": "uid", "setreuid": "euid", "setresuid": "euid", "setfsuid": "uid",
              "setgid": "gid", "setregid": "egid", "setresgid": "egid", "setfsgid": "gid"}


class ThreadTable:
    """Threads by tid; processes are their main threads (tid == pid)."""

    def __init__(
        self,
        *,
        containers: ContainerManager,
        users: UserTable,
        proc_root: str = "/proc",
        max_threads: int = 65536,
        linger_ns: int = 1_000_000_000,
        read_proc: bool = True,
    ) -> None:
        self.containers = containers
        self.users = users
        self.proc_root = proc_root
        self.max_threads = max_threads
        self.linger_ns = linger_ns
        self.read_proc = read_proc
        self.threads: dict[int, ThreadInfo] = {}
        self._dying: deque[tuple[int, int, ThreadInfo]] = deque()
        self._cgroup_ids: dict[int, ContainerInfo] = {}
        self.cgroups = CgroupPaths(None if read_proc else "")
        self.exe_facts = ExeFacts(proc_root, read_proc)
        self._root_pids = self.exe_facts.root_pids  # container id -> a pid inside it
        self._multi: set[int] = set()  # pids known to have more than one thread
        self._scanning = False
        self.exe_paths = ExePaths(proc_root, read_proc)
        self.boot_ns = procfs.boot_time_ns()

    # -- building ---------------------------------------------------------------------------
    def scan(self) -> int:
        """Read every thread from /proc; returns how many the table holds."""
        self._scanning = True  # no first-sighting wait per container: they are fetched in bulk
        try:
            for tid, pid in procfs.list_threads(self.proc_root):
                if tid not in self.threads:
                    self._load(tid, pid, link=False)
        finally:
            self._scanning = False
        for th in self.threads.values():
            self._link(th)
        return len(self.threads)

    def _load(self, tid: int, pid: int | None, *, link: bool = True) -> ThreadInfo | None:
        if not self.read_proc:
            return None
        got = procfs.read_thread(
            tid, pid if pid is not None and pid != tid else None,
            proc_root=self.proc_root, boot_ns=self.boot_ns,
        )
        if got is None:
            return None
        th, cgroup = got
        main = self.threads.get(th.pid) if th.pid != tid else None
        if th.pid != tid:
            self._multi.add(th.pid)
        if main is not None:
            th.fds = main.fds
        th.container = self._container(cgroup)
        if not th.container.is_host:
            self._root_pids.setdefault(th.container.id, th.pid)
        self._set_users(th)
        self._insert(th)
        if link:
            self._link(th)
        return th

    def _container(self, cgroup_text: str) -> ContainerInfo:
        found = parse_cgroup(cgroup_text)
        if found is None:
            return HOST
        return self.containers.get(found[0], found[1], wait=not self._scanning,
                                   namespace=found[2])

    def _container_of(self, ev: Event, pid: int, default: ContainerInfo) -> ContainerInfo:
        """The container of the event's process: by its cgroup v2 id (cached), else /proc."""
        ctx = ev.ctx or {}
        cgroup_id = as_int(ctx.get("cgroup_id"))
        if cgroup_id:
            found = self._cgroup_ids.get(cgroup_id)
            if found is not None:
                return found
            path = self.cgroups.path(cgroup_id)
            if path is not None:
                container = self._container(path)
                if len(self._cgroup_ids) > 16384:
                    self._cgroup_ids.clear()
                self._cgroup_ids[cgroup_id] = container
                return container
        # /proc is read later than the event happened: never cached by cgroup id.
        text = as_str(ctx.get("cgroup"))
        if text is None and self.read_proc:
            text = procfs.read_text(f"{self.proc_root}/{pid}/cgroup")
        return default if text is None else self._container(text)

    def _set_users(self, th: ThreadInfo) -> None:
        key = th.container.id
        th.user = self.users.user(key, th.pid, th.uid)
        th.group = self.users.group(key, th.pid, th.gid)
        th.loginuser = self.users.user(key, th.pid, th.loginuid) if th.loginuid >= 0 else None

    def _insert(self, th: ThreadInfo) -> None:
        threads = self.threads
        if len(threads) >= self.max_threads:
            for old in list(threads)[: max(1, self.max_threads // 16)]:
                del threads[old]
        threads[th.tid] = th

    def _link(self, th: ThreadInfo) -> None:
        """Point ``th.parent`` at its real parent's main thread (loading it if needed)."""
        if th.ppid <= 0 or th.ppid == th.pid:
            th.parent = None
            return
        parent = self.threads.get(th.ppid)
        if parent is None:
            parent = self._load(th.ppid, None, link=False)
            if parent is not None:
                self._link_shallow(parent)
        th.parent = parent

    def _link_shallow(self, th: ThreadInfo) -> None:
        # Ancestors loaded on a miss are linked as far as the table or /proc reaches.
        node: ThreadInfo | None = th
        depth = 0
        while node is not None and node.parent is None and node.ppid > 0 and depth < 64:
            parent = self.threads.get(node.ppid) or self._load(node.ppid, None, link=False)
            node.parent = parent
            node = parent
            depth += 1

    def get(self, tid: int, ev: Event | None = None) -> ThreadInfo | None:
        """The thread ``tid``: known, or built as the module docstring says."""
        th = self.threads.get(tid)
        if th is not None:
            return th
        ctx = ev.ctx if ev is not None else None
        if ctx is None:
            return self._load(tid, None)
        th = self._from_event(tid, ev)  # type: ignore[arg-type]
        if th is None:
            th = self._load(tid, as_int(ctx.get("pid")))
        if th is None:
            th = self._from_ctx(tid, ev)  # type: ignore[arg-type]
        return th

    def _from_event(self, tid: int, ev: Event) -> ThreadInfo | None:
        """A thread first met after the scan, without /proc: a new thread of a known process
        (a copy of its leader), or a new process built from its known parent and the kernel's
        context (``clones.child_from_event``). None when neither vouches for it."""
        ctx = ev.ctx or {}
        pid = as_int(ctx.get("pid"))
        if pid is None:
            return None
        if pid != tid:
            main = self.threads.get(pid)
            if main is None:
                return None
            th = copy_thread(main, tid)
            self._multi.add(pid)
            th.comm = as_str(ctx.get("comm")) or th.comm
            th.vtid = tid if main.vtid == main.tid else None
        else:
            parent = self.threads.get(as_int(ctx.get("ppid")) or 0)
            if parent is None or parent.tid == 1:  # pid 1 may have adopted an orphan
                return None
            child = child_from_event(ev, tid, parent)
            if child is None:
                return None
            th = child
            if ev.type not in EXEC_EVENTS:  # else on_exec sets them, right after
                apply_ctx(th, ev)
                th.container = self._container_of(ev, tid, parent.container)
                if th.container is not parent.container or users_stale(th):
                    self._set_users(th)  # else the parent's, as a caller's side copies them
        if "cap_effective" in ctx:
            set_vids(th, as_int(ctx.get("vpid")))
        self._insert(th)
        return th

    def _from_ctx(self, tid: int, ev: Event) -> ThreadInfo:
        """A thread that is already gone from /proc, from what the kernel told us."""
        ctx = ev.ctx or {}
        pid = as_int(ctx.get("pid")) or tid
        main = self.threads.get(pid) if pid != tid else None
        if main is not None:
            th = copy_thread(main, tid)
            self._multi.add(pid)
        else:
            comm = as_str(ctx.get("comm")) or ""
            th = ThreadInfo(tid=tid, pid=pid, comm=comm, exe=comm, start_ts=started(ev))
            th.exec_ts = ev.ts
            th.ppid = as_int(ctx.get("ppid")) or 0
            apply_ctx(th, ev)
            set_vids(th, as_int(ctx.get("vpid")))
            th.container = self._container_of(ev, pid, HOST)
            self._set_users(th)
        self._insert(th)
        self._link(th)
        return th

    # -- events -----------------------------------------------------------------------------
    def on_clone(self, ev: Event, th: ThreadInfo) -> None:
        """clone/fork/vfork/clone3 exit: the parent side creates the child."""
        res = ev.res
        if res == 0:  # the child's own return: the kernel tells its ids in its pid namespace
            self._child_side(ev, th)
            return
        if res is None or res < 0 or res in self.threads:
            return  # failed, or the child is known already
        if clone_flags(ev) & CLONE_THREAD:
            self._multi.add(th.pid)
        child = child_of(ev, th, res, self.threads.get(th.pid, th))
        self._insert(child)

    def _child_side(self, ev: Event, th: ThreadInfo) -> None:
        """The child's own clone return, which can come before the parent's: ids, and the fds
        it inherited when the thread was first met here (read from /proc or the event)."""
        ctx = ev.ctx or {}
        set_vids(th, as_int(ctx.get("vpid")))
        th.start_ts = started(ev)  # the caller's side, when first, told its own time
        flags = as_int(ctx.get("clone_flags")) or 0
        if th.fds or flags & (CLONE_THREAD | CLONE_PARENT):
            return
        caller = self.threads.get(as_int(ctx.get("ppid")) or 0)
        if caller is not None and caller is not th and caller.fds:
            th.fds = inherited_fds(caller.fds, flags)

    def on_exec(self, ev: Event, th: ThreadInfo) -> None:
        """A successful execve/execveat changes the whole process image."""
        if ev.res is not None and ev.res != 0:
            return
        exe, args = command_line(ev, lambda: self._cmdline(th.pid))
        filename = as_str(arg(ev, "filename"))
        comm = exec_comm(ev, exe)
        cwd = as_str(arg(ev, "cwd"))
        if cwd:
            th.cwd = cwd
        old_container = th.container
        th.container = self._container_of(ev, th.pid, th.container)
        exepath = as_str(arg(ev, "trusted_exepath")) or as_str(arg(ev, "exepath"))
        if not exepath:
            exepath = self.exe_paths.find(ev, th, resolve_path(th.cwd, filename or exe or ""))
        if not exepath:
            exepath = self.exe_facts.resolve(th, resolve_path(th.cwd, filename or exe or ""), ev)
        th.comm = comm
        th.exe = exe if exe is not None else comm
        th.args = args or []
        th.exepath = exepath
        th.exec_ts = ev.ts
        env = arg(ev, "env")
        if isinstance(env, bytes | str):
            th.env = split_env(env)
        apply_ctx(th, ev)
        set_vids(th, as_int((ev.ctx or {}).get("vpid")))
        if not th.container.is_host:
            self._root_pids[th.container.id] = th.pid
        set_exe_facts(ev, th, self.exe_facts.upper)
        if th.container is not old_container or users_stale(th):
            self._set_users(th)
        self._after_exec(th)

    def _after_exec(self, th: ThreadInfo) -> None:
        # The kernel ends the other threads and the exec'ing thread takes the leader's tid.
        if th.tid != th.pid:
            self.threads.pop(th.tid, None)
            th.tid = th.pid
            self.threads[th.pid] = th
        if th.pid in self._multi:
            self._multi.discard(th.pid)
            for tid in [t for t, o in self.threads.items() if o.pid == th.pid and o is not th]:
                del self.threads[tid]
        for num in [n for n, f in th.fds.items() if f.open_flags & O_CLOEXEC]:
            del th.fds[num]

    def _cmdline(self, pid: int) -> str:
        """The /proc cmdline of ``pid`` ("" when /proc is not read or the process is gone)."""
        if not self.read_proc:
            return ""
        return procfs.read_text(f"{self.proc_root}/{pid}/cmdline") or ""

    def on_exit(self, ev: Event, th: ThreadInfo) -> None:
        """The thread ended: keep it ``linger_ns`` for late events, then drop it."""
        self._dying.append((ev.ts, th.tid, th))
        self.reap(ev.ts)

    def reap(self, now: int) -> None:
        """Drop threads that ended more than ``linger_ns`` before ``now``."""
        dying = self._dying
        limit = now - self.linger_ns
        while dying and (dying[0][0] <= limit or len(dying) > self.max_threads // 4):
            _, tid, th = dying.popleft()
            if self.threads.get(tid) is th:
                del self.threads[tid]

    def on_setid(self, ev: Event, th: ThreadInfo) -> None:
        """setuid/setgid family: the effective id changes (``-1`` keeps it)."""
        t, v = ev.type, as_int(ev.args.get(_SETID_ARG[ev.type]))
        if (ev.res is not None and ev.res != 0) or v is None or v in (-1, NO_ID):
            return
        if t in UID_EVENTS:
            th.uid = th.euid = v
            th.user = self.users.user(th.container.id, th.pid, v)
        else:
            th.gid = th.egid = v
            th.group = self.users.group(th.container.id, th.pid, v)

    def on_chdir(self, ev: Event, th: ThreadInfo) -> None:
        """chdir/fchdir: the new working directory."""
        if ev.res is not None and ev.res != 0:
            return
        if ev.type == "chdir":
            path = as_str(ev.args.get("path"))
            if path is not None:
                th.cwd = resolve_path(th.cwd, path)
        else:
            fd = as_int(ev.args.get("fd"))
            info = th.fds.get(fd) if fd is not None else None
            name = (ev.ctx or {}).get("dirpath") or (info.name if info is not None else "")
            if isinstance(name, str) and name.startswith("/"):  # dirpath: a dropped dir's
                th.cwd = name
            elif self.read_proc:
                th.cwd = procfs.read_link(f"{self.proc_root}/{th.pid}/cwd") or th.cwd
        main = self.threads.get(th.pid)
        if main is not None and main is not th:
            main.cwd = th.cwd

    def relink(self, th: ThreadInfo, ppid: int) -> None:
        """The kernel says the real parent is ``ppid`` (reparenting, CLONE_PARENT)."""
        th.ppid = ppid
        self._link(th)
