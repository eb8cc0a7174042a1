"""How each Falco field is read from a :class:`detector.events.Event`: a Python expression.

Every extractor is a Python expression over the locals ``e`` (the event), ``t`` (its thread or
None), ``p`` (the thread's parent or None), ``c`` (the thread's container or None), ``fd`` (the
event's descriptor or None) and ``a`` (the event's args), plus the ``_h_*`` helpers of
:mod:`detector.rules.fields.helpers`. The compiler inlines these expressions into generated code;
:func:`make_extractor` turns one into a plain function for the reference evaluator and the output
formatter. An expression yields the value, or None when the event does not have it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detector.events import Event
from detector.rules.fields.helpers import HELPERS
from falcoctl_py.bounded import is_digits

# Locals the generated code can bind once per event, and how.
PRELUDE: dict[str, str] = {
    "t": "t = e.thread",
    "p": "p = t.parent if t is not None else None",
    "c": "c = t.container if t is not None else None",
    "fd": "fd = e.fd",
    "a": "a = e.args",
}
PRELUDE_ORDER = ("t", "p", "c", "fd", "a")


def _t(expr: str) -> str:
    return f"({expr} if t is not None else None)"


def _p(expr: str) -> str:
    return f"({expr} if p is not None else None)"


def _c(expr: str) -> str:
    return f"({expr} if c is not None else None)"


def _f(expr: str) -> str:
    return f"({expr} if fd is not None else None)"


SIMPLE: dict[str, str] = {
    # evt
    "evt.num": "e.num",
    "evt.type": "e.type",
    "syscall.type": "(e.type if e.source == 'syscall' else None)",
    "evt.source": "e.source",
    "evt.cpu": "e.cpu",
    "evt.dir": "e.dir",
    "evt.res": "_h_res(e)",
    "evt.rawres": "e.res",
    "evt.failed": "(e.res is not None and e.res < 0)",
    "evt.args": "_h_args(e)",
    "evt.info": "_h_args(e)",
    "evt.buffer": "_h_buffer(e)",
    "evt.buflen": "(None if (_b := _h_buffer(e)) is None else len(_b))",
    "evt.is_open_read": "_h_open_read(e)",
    "evt.is_open_write": "_h_open_write(e)",
    "evt.is_open_exec": "_h_open_bit(e, 'exec')",
    "evt.is_open_create": "_h_open_bit(e, 'create')",
    "evt.is_io": "(e.type in _h_R.IO_READ_TYPES or e.type in _h_R.IO_WRITE_TYPES)",
    "evt.is_io_read": "(e.type in _h_R.IO_READ_TYPES)",
    "evt.is_io_write": "(e.type in _h_R.IO_WRITE_TYPES)",
    "evt.io_dir": "('r' if e.type in _h_R.IO_READ_TYPES else"
                  " 'w' if e.type in _h_R.IO_WRITE_TYPES else None)",
    "evt.is_wait": "(e.type in _h_R.WAIT_TYPES)",
    "evt.is_syslog": "False",
    "evt.is_async": "False",
    "evt.count": "1",
    "evt.count.error": "(1 if e.res is not None and e.res < 0 else 0)",
    "evt.count.exit": "(1 if e.dir == '<' else 0)",
    "evt.time": "_h_R.time_string(e.ts)",
    "evt.time.s": "_h_R.time_string(e.ts, nanos=False)",
    "evt.time.iso8601": "_h_R.iso8601(e.ts)",
    "evt.datetime": "_h_R.time_string(e.ts, date=True)",
    "evt.datetime.s": "_h_R.time_string(e.ts, date=True, nanos=False)",
    "evt.rawtime": "e.ts",
    "evt.rawtime.s": "(e.ts // 1000000000)",
    "evt.rawtime.ns": "(e.ts % 1000000000)",
    "evt.hostname": "_h_R.hostname()",
    "evt.abspath": "_h_fspath(e, 'name', False)",
    "fs.path.name": "_h_fspath(e, 'name', False)",
    "fs.path.nameraw": "_h_fspath(e, 'name', True)",
    "fs.path.source": "_h_fspath(e, 'source', False)",
    "fs.path.sourceraw": "_h_fspath(e, 'source', True)",
    "fs.path.target": "_h_fspath(e, 'target', False)",
    "fs.path.targetraw": "_h_fspath(e, 'target', True)",
    # fd
    "fd.num": "(fd.num if fd is not None else _h_int(e.args.get('fd')))",
    "fd.type": _f("fd.type"),
    "fd.typechar": _f("_h_TC.get(fd.type, 'o')"),
    "fd.name": _f("fd.name"),
    "fd.nameraw": _f("(fd.nameraw or fd.name)"),
    "fd.directory": "(None if fd is None else fd.name if (_ft := fd.type) == 'directory' else"
                    " ((_fn[:_fj] or '/') if (_fj := (_fn := fd.name).rfind('/')) >= 0 else '')"
                    " if _ft == 'file' or _ft == 'memfd' else None)",  # _h_fddir, inline
    "fd.filename": "_h_fdfile(fd)",
    "fd.cip": _f("_h_ip(fd.cip)"), "fd.sip": _f("_h_ip(fd.sip)"),
    "fd.lip": _f("_h_ip(fd.lip)"), "fd.rip": _f("_h_ip(fd.rip)"),
    "fd.cnet": _f("_h_ip(fd.cip)"), "fd.snet": _f("_h_ip(fd.sip)"),
    "fd.lnet": _f("_h_ip(fd.lip)"), "fd.rnet": _f("_h_ip(fd.rip)"),
    "fd.ip": "_h_ips(fd)", "fd.net": "_h_ips(fd)", "fd.port": "_h_ports(fd)",
    "fd.cport": _f("fd.cport"), "fd.sport": _f("fd.sport"),
    "fd.lport": _f("fd.lport"), "fd.rport": _f("fd.rport"),
    "fd.l4proto": _f("fd.l4proto"),
    "fd.sockfamily": _f("fd.sockfamily"),
    "fd.is_server": _f("fd.is_server"),
    "fd.connected": _f("fd.connected"),
    "fd.name_changed": _f("fd.name_changed"),
    "fd.cip.name": _f("fd.cip_name"), "fd.sip.name": _f("fd.sip_name"),
    "fd.lip.name": _f("fd.lip_name"), "fd.rip.name": _f("fd.rip_name"),
    "fd.dev": _f("fd.dev"),
    "fd.dev.major": _f("(None if fd.dev is None else fd.dev >> 20)"),
    "fd.dev.minor": _f("(None if fd.dev is None else fd.dev & 0xfffff)"),
    "fd.ino": _f("fd.ino"),
    "fd.uid": "(f'{fd.num}{e.tid}' if fd is not None else None)",
    "fd.containername": "(f'{c.id}:{fd.name}' if fd is not None and c is not None else None)",
    "fd.containerdirectory":
        "(f'{c.id}:{_d}' if c is not None and (_d := _h_fddir(fd)) is not None else None)",
    "fd.types": "_h_fdtypes(t, None)",
    # process
    "proc.name": _t("t.comm"), "proc.pname": _p("p.comm"),
    "proc.exe": _t("t.exe"), "proc.pexe": _p("p.exe"),
    "proc.exepath": _t("t.exepath"), "proc.pexepath": _p("p.exepath"),
    "proc.args": _t("' '.join(t.args)"),
    "proc.cmdline": _t("_h_cmdline(t)"), "proc.pcmdline": _p("_h_cmdline(p)"),
    "proc.cmdnargs": _t("len(t.args)"),
    "proc.cmdlenargs": _t("sum(len(x) for x in t.args)"),
    "proc.exeline": _t("' '.join([t.exe, *t.args])"),
    "proc.env": "_h_env(t, None)",
    "proc.cwd": "_h_cwd(t)",
    "proc.tty": _t("t.tty"),
    "proc.pid": _t("t.pid"), "proc.ppid": _t("t.ppid"),
    "proc.vpid": _t("t.vpid"), "proc.pvpid": _p("p.vpid"),
    "proc.sid": _t("t.sid"),
    "proc.sname": "_h_leader(t, 'sid', 'comm')",
    "proc.sid.exe": "_h_leader(t, 'sid', 'exe')",
    "proc.sid.exepath": "_h_leader(t, 'sid', 'exepath')",
    "proc.vpgid": _t("t.vpgid"),
    "proc.vpgid.name": "_h_leader(t, 'vpgid', 'comm')",
    "proc.vpgid.exe": "_h_leader(t, 'vpgid', 'exe')",
    "proc.vpgid.exepath": "_h_leader(t, 'vpgid', 'exepath')",
    "proc.duration": "(e.ts - t.start_ts if t is not None and t.start_ts else None)",
    "proc.ppid.duration": "(e.ts - p.start_ts if p is not None and p.start_ts else None)",
    "proc.pid.ts": "(t.start_ts if t is not None and t.start_ts else None)",
    "proc.ppid.ts": "(p.start_ts if p is not None and p.start_ts else None)",
    "proc.is_exe_writable": _t("t.exe_writable"),
    "proc.is_exe_upper_layer": _t("t.exe_upper_layer"),
    "proc.is_exe_from_memfd": _t("t.exe_from_memfd"),
    "proc.is_sid_leader": _t("t.sid == (t.vpid if t.vpid is not None else t.pid)"),
    "proc.is_vpgid_leader": _t("t.vpgid == (t.vpid if t.vpid is not None else t.pid)"),
    "proc.exe_ino": _t("t.exe_ino"),
    "proc.exe_ino.ctime": _t("t.exe_ino_ctime"),
    "proc.exe_ino.mtime": _t("t.exe_ino_mtime"),
    "proc.exe_ino.ctime_duration_proc_start":
        "((t.exec_ts or t.start_ts) - t.exe_ino_ctime"
        " if t is not None and t.exe_ino_ctime is not None else None)",
    "proc.loginshellid": "_h_loginshell(t)",
    "proc.fdopencount": _t("len(t.fds)"),
    "proc.stdin.type": "_h_stdfd(t, 0, 'type')", "proc.stdout.type": "_h_stdfd(t, 1, 'type')",
    "proc.stderr.type": "_h_stdfd(t, 2, 'type')", "proc.stdin.name": "_h_stdfd(t, 0, 'name')",
    "proc.stdout.name": "_h_stdfd(t, 1, 'name')", "proc.stderr.name": "_h_stdfd(t, 2, 'name')",
    "thread.tid": _t("t.tid"),
    "thread.vtid": _t("t.vtid"),
    "thread.ismain": _t("t.tid == t.pid"),
    "thread.cap_effective": _t("_h_caps(t.cap_effective)"),
    "thread.cap_permitted": _t("_h_caps(t.cap_permitted)"),
    "thread.cap_inheritable": _t("_h_caps(t.cap_inheritable)"),
    # user / group
    "user.uid": "_h_uid(t)",
    "user.name": "(t.user.name if t is not None and t.user is not None else None)",
    "user.homedir": "(t.user.homedir if t is not None and t.user is not None else None)",
    "user.shell": "(t.user.shell if t is not None and t.user is not None else None)",
    "user.loginuid": _t("t.loginuid"),
    "user.loginname":
        "(t.loginuser.name if t is not None and t.loginuser is not None else None)",
    "group.gid": "(t.group.gid if t is not None and t.group is not None else _t('t.gid'))",
    "group.name": "(t.group.name if t is not None and t.group is not None else None)",
    # container plugin
    "container.id": _c("c.id"),
    "container.full_id": _c("(c.full_id or c.id)"),
    "container.name": "_h_cname(c)",
    "container.image": _c("c.image"),
    "container.image.id": _c("c.image_id"),
    "container.image.repository": _c("c.image_repository"),
    "container.image.tag": _c("c.image_tag"),
    "container.image.digest": _c("c.image_digest"),
    "container.type": _c("c.type"),
    "container.privileged": _c("c.privileged"),
    "container.mounts": _c("' '.join(f'{s}:{d}' for s, d in c.mounts)"),
    "container.start_ts": _c("c.start_ts"),
    "container.duration": "(e.ts - c.start_ts if c is not None and c.start_ts else None)",
    "container.labels": _c("(','.join(f'{k}:{v}' for k, v in c.labels.items()) or None)"),
    # k8s.*: the CRI pod sandbox (detector.state.runtimes.cri), else the kubelet's labels
    "k8s.pod.name": _c("(c.pod_name or c.labels.get('io.kubernetes.pod.name'))"),
    "k8s.ns.name": _c("(c.pod_namespace or c.labels.get('io.kubernetes.pod.namespace'))"),
    "k8s.pod.uid": _c("(c.pod_uid or c.labels.get('io.kubernetes.pod.uid'))"),
    "k8s.pod.id": _c("(c.pod_uid or c.labels.get('io.kubernetes.pod.uid'))"),
    "k8s.pod.sandbox_id": _c("(c.pod_sandbox_id[:12] if c.pod_sandbox_id else None)"),
    "k8s.pod.full_sandbox_id": _c("c.pod_sandbox_id"),
    "k8s.pod.labels":
        _c("(','.join(f'{k}:{v}' for k, v in c.pod_labels.items()) or None)"),
    "k8s.pod.ip": _c("c.pod_ip"),
    "container.ip": _c("c.pod_ip"),
    "container.cni.json": _c("c.pod_cni_json"),
    "k8s.pod.cni.json": _c("c.pod_cni_json"),
}
# group.gid above must not nest templates: fix it up here.
SIMPLE["group.gid"] = ("(t.group.gid if t.group is not None else t.gid)"
                       " if t is not None else None")

# Fields whose value is a list of candidates and that match when ANY candidate matches.
ANY_FIELDS = frozenset({"proc.aname", "proc.aexe", "proc.aexepath", "proc.acmdline",
                        "proc.apid", "fd.ip", "fd.net", "fd.port"})
_ANC_ATTR = {"proc.aname": "comm", "proc.aexe": "exe", "proc.aexepath": "exepath",
             "proc.acmdline": "cmdline", "proc.apid": "pid"}


# Cheaper forms of fields for one event type, where the generated matcher knows the type
# (``codegen``): the helper's own type test is left out; flags that are not an int still go
# through the helper.
_OPENS = frozenset({"open", "openat", "openat2", "open_by_handle_at"})
BY_TYPE: dict[str, tuple[frozenset[str], str]] = {
    "evt.is_open_read": (_OPENS, "((_of & 3 != 1) if (_of := e.args.get('flags')).__class__ is int"
                                 " else _h_open_read(e))"),
    "evt.is_open_write": (_OPENS, "((_of & 3 != 0) if (_of := e.args.get('flags')).__class__ is"
                                  " int else _h_open_write(e))"),
}


def typed_expr(name: str, evttype: str, expr: str) -> str:
    """``expr`` (field ``name``'s extractor), or its cheaper form for events of ``evttype``."""
    got = BY_TYPE.get(name)
    return got[1] if got is not None and evttype in got[0] else expr


def arg_expr(name: str, arg: str | None) -> str | None:
    """The expression of a field that takes an argument (None: no extractor for that form)."""
    if name in _ANC_ATTR:
        attr = _ANC_ATTR[name]
        if arg is None:
            return f"_h_anc(t, {attr!r})"
        return f"_h_ancn(t, {int(arg)}, {attr!r})" if is_digits(arg) else None
    if arg is None:
        return SIMPLE.get(name)
    if name == "evt.arg":
        return f"_h_argidx(e, {int(arg)})" if is_digits(arg) else f"_h_argstr(e, {arg!r})"
    if name == "evt.rawarg":
        return f"_h_rawarg(e, {arg!r})"
    if name == "evt.abspath":
        which = {"src": "source", "dst": "target"}.get(arg)
        return f"_h_fspath(e, {which!r}, False)" if which else None
    if name == "evt.type.is":
        return f"(1 if e.type == {arg!r} else 0)"
    if name == "proc.env":
        return f"_h_env(t, {arg!r})"
    if name == "fd.types":
        return f"_h_fdtypes(t, {int(arg)})" if is_digits(arg) else None
    if name in ("container.mount", "container.mount.source", "container.mount.dest"):
        what = name.rpartition(".")[2]
        return f"_h_mount(c, {arg!r}, {what!r})"
    if name == "container.label":
        return f"_h_label(c, {arg!r})"
    if name == "k8s.pod.label":
        return f"(c.pod_labels.get({arg!r}) if c is not None else None)"
    return None


def locals_used(expr: str) -> tuple[str, ...]:
    """Which prelude locals an expression reads, in binding order (``p``/``c`` need ``t``)."""
    import re

    names = set(re.findall(r"\b([tpcae]|fd)\b", expr))
    if "p" in names or "c" in names:
        names.add("t")
    return tuple(n for n in PRELUDE_ORDER if n in names)


_EXTRACTORS: dict[str, Callable[[Event], Any]] = {}


def make_extractor(expr: str) -> Callable[[Event], Any]:
    """A plain function ``(event) -> value | None`` from an extractor expression."""
    fn = _EXTRACTORS.get(expr)
    if fn is None:
        lines = ["def _x(e):"]
        lines += ["    " + PRELUDE[n] for n in locals_used(expr)]
        lines.append(f"    return {expr}")
        ns: dict[str, Any] = dict(HELPERS)
        exec(compile("\n".join(lines), f"<field {expr[:40]}>", "exec"), ns)
        fn = ns["_x"]
        _EXTRACTORS[expr] = fn
    return fn
