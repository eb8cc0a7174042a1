"""The ``_h_*`` helpers that field extractor expressions (:mod:`detector.rules.fields.extract`)
call: ancestors, open flags, event arguments, fd names and addresses, environment, container
mounts and labels, file system paths. Each takes what it reads and returns None when absent."""

from __future__ import annotations

import posixpath
from typing import Any

from detector.events import FD_TYPECHARS, Event, FdInfo, ThreadInfo
from detector.rules.fields import render as R
from detector.rules.fields.eventtable import EXIT_PARAMS
from falcoctl_py.bounded import is_digits

_OPEN_TYPES = R.OPEN_TYPES


def _cmdline(th: ThreadInfo) -> str:
    return th.comm + " " + " ".join(th.args) if th.args else th.comm


def _anc(th: ThreadInfo | None, attr: str) -> list[Any] | None:
    if th is None:
        return None
    out = [_attr(x, attr) for x in th.ancestors()]
    out = [v for v in out if v is not None]
    return out or None


def _ancn(th: ThreadInfo | None, n: int, attr: str) -> Any:
    if th is None:
        return None
    if n == 0:
        return _attr(th, attr)
    anc = th.ancestors()
    return _attr(anc[n - 1], attr) if n <= len(anc) else None


def _attr(th: ThreadInfo, attr: str) -> Any:
    if attr == "cmdline":
        return _cmdline(th)
    return getattr(th, attr)


def _leader(th: ThreadInfo | None, key: str, attr: str) -> Any:
    """The session (``sid``) or process-group (``vpgid``) leader's attribute."""
    if th is None:
        return None
    want = getattr(th, key)
    found = th if th.pid == want else None
    if found is None:
        for x in th.ancestors():
            if getattr(x, key) != want:
                break
            found = x
            if x.pid == want:
                break
    return None if found is None else _attr(found, attr)


def _res(e: Event) -> str | None:
    return None if e.res is None else R.errno_name(e.res)


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _open_flags(e: Event) -> int:
    if e.type == "creat":
        return R.O_WRONLY | R.O_CREAT
    flags = e.args.get("flags")
    return flags if isinstance(flags, int) else 0


def _open_read(e: Event) -> bool:
    if e.type not in _OPEN_TYPES:
        return False
    flags = e.args.get("flags")
    return (flags & 3 if flags.__class__ is int else _open_flags(e) & 3) != R.O_WRONLY


def _open_write(e: Event) -> bool:
    if e.type not in _OPEN_TYPES:
        return False
    flags = e.args.get("flags")
    return (flags & 3 if flags.__class__ is int else _open_flags(e) & 3) != R.O_RDONLY


def _open_bit(e: Event, which: str) -> bool:
    if e.type not in _OPEN_TYPES:
        return False
    flags = _open_flags(e)
    created = bool(flags & R.O_CREAT)
    if which == "create":
        return created
    mode = e.args.get("mode")
    return created and isinstance(mode, int) and bool(mode & 0o111)


def _argstr(e: Event, name: str) -> str | None:
    if name not in e.args:
        if name == "res" and e.res is not None:
            return R.errno_name(e.res) if e.res < 0 else str(e.res)
        return None
    value = e.args[name]
    if name == "fd" and isinstance(value, int) and value >= 0 and e.fd is not None \
            and e.fd.num == value and e.fd.name:
        return f"<{e.fd.typechar}>{e.fd.name}"
    if isinstance(value, int) and R.param_meta(e.type, name)[0] == "UID":
        # Falco resolves uids to user names; the event knows its own user, and root.
        th = e.thread
        if th is not None and th.user is not None and th.user.uid == value and th.user.name:
            return th.user.name
        if value == 0:
            return "root"
    return R.render_param(e.type, name, value)


def _argidx(e: Event, n: int) -> str | None:
    params = EXIT_PARAMS.get(e.type)
    names = [p[0] for p in params] if params else list(e.args)
    return _argstr(e, names[n]) if 0 <= n < len(names) else None


def _rawarg(e: Event, name: str) -> Any:
    if name == "res" and "res" not in e.args:
        return e.res
    return e.args.get(name)


def _args(e: Event) -> str:
    parts = []
    params = EXIT_PARAMS.get(e.type)
    names = [p[0] for p in params] if params else list(e.args)
    for name in names:
        if name not in e.args and not (name == "res" and e.res is not None):
            continue
        raw = _rawarg(e, name)
        plain = R.render_param(e.type, name, raw, resolved=False)
        shown = _argstr(e, name)
        parts.append(f"{name}={plain}" if shown == plain else f"{name}={plain}({shown})")
    return " ".join(parts)


def _buffer(e: Event) -> bytes | None:
    data = e.args.get("data")
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else None


def _fddir(fd: FdInfo | None) -> str | None:
    if fd is None:
        return None
    ftype = fd.type
    if ftype == "directory":
        return fd.name
    if ftype != "file" and ftype != "memfd":
        return None
    name = fd.name
    cut = name.rfind("/")
    return name[:cut] or "/" if cut >= 0 else ""


def _fdfile(fd: FdInfo | None) -> str | None:
    if fd is None or fd.type not in ("file", "directory", "memfd"):
        return None
    return posixpath.basename(fd.name)


def _ips(fd: FdInfo | None) -> list[R.IPValue] | None:
    if fd is None:
        return None
    out = [v for v in (R.ip_value(fd.cip), R.ip_value(fd.sip)) if v is not None]
    return out or None


def _ports(fd: FdInfo | None) -> list[int] | None:
    if fd is None:
        return None
    out = [v for v in (fd.cport, fd.sport) if v is not None]
    return out or None


def _fdtypes(th: ThreadInfo | None, n: int | None) -> list[str] | None:
    if th is None:
        return None
    if n is not None:
        f = th.fds.get(n)
        return None if f is None else [f.type]
    return sorted({f.type for f in th.fds.values()}) or None


def _stdfd(th: ThreadInfo | None, n: int, attr: str) -> str | None:
    if th is None:
        return None
    f = th.fds.get(n)
    return None if f is None else getattr(f, attr)


def _cwd(th: ThreadInfo | None) -> str | None:
    if th is None:
        return None
    return th.cwd if th.cwd.endswith("/") else th.cwd + "/"


def _env(th: ThreadInfo | None, name: str | None) -> str | None:
    if th is None:
        return None
    if name is None:
        return " ".join(th.env)
    prefix = name + "="
    for item in th.env:
        if item.startswith(prefix):
            return item[len(prefix):]
    return None


def _loginshell(th: ThreadInfo | None) -> int | None:
    if th is None:
        return None
    found = None
    for x in [th, *th.ancestors()]:
        if x.comm in R.SHELLS:
            found = x.pid
    return found


def _mount(c: Any, arg: str, what: str) -> str | None:
    if c is None or c.is_host:
        return None
    mounts = c.mounts
    if is_digits(arg):
        i = int(arg)
        if i >= len(mounts):
            return None
        src, dest = str(mounts[i][0]), str(mounts[i][1])
    else:
        import fnmatch

        key = 1 if what == "source" else 0
        hit = [m for m in mounts if fnmatch.fnmatchcase(m[key], arg)]
        if not hit:
            return "N/A"  # the container plugin's rendering of "no such mount"
        src, dest = str(hit[0][0]), str(hit[0][1])
    if what == "source":
        return src
    if what == "dest":
        return dest
    return f"{src}:{dest}"


def _label(c: Any, key: str) -> str | None:
    if c is None:
        return None
    value: str | None = c.labels.get(key)
    return value


def _cname(c: Any) -> str | None:
    if c is None:
        return None
    name: str | None = "host" if c.is_host else c.name
    return name


_FS_NAME = ("name", "path", "pathname", "filename")
_FS_PAIRS = {"link": ("oldpath", "newpath"), "linkat": ("oldpath", "newpath"),
             "rename": ("oldpath", "newpath"), "renameat": ("oldpath", "newpath"),
             "renameat2": ("oldpath", "newpath"), "symlink": ("target", "linkpath"),
             "symlinkat": ("target", "linkpath")}


def _fspath(e: Event, which: str, raw: bool) -> str | None:
    """fs.path.*: the path a file syscall works on (resolved against the cwd unless raw)."""
    value: object = None
    if which == "name":
        if e.type in _FS_PAIRS:
            return None
        value = next((e.args[k] for k in _FS_NAME if isinstance(e.args.get(k), str)
                      and e.args[k]), None)
    else:
        pair = _FS_PAIRS.get(e.type)
        if pair is not None:
            value = e.args.get(pair[0] if which == "source" else pair[1])
    if not isinstance(value, str) or not value:
        return None
    if raw:
        return value
    if which == "name" and e.type in _OPEN_TYPES and e.fd is not None and e.fd.name:
        return e.fd.name
    if value.startswith("/"):
        return posixpath.normpath(value)
    cwd = e.thread.cwd if e.thread is not None else None
    return posixpath.normpath(posixpath.join(cwd, value)) if cwd else value


def _uid(th: ThreadInfo | None) -> int | None:
    if th is None:
        return None
    return th.user.uid if th.user is not None else th.euid


HELPERS: dict[str, object] = {
    "_h_R": R,
    "_h_anc": _anc, "_h_ancn": _ancn, "_h_leader": _leader, "_h_cmdline": _cmdline,
    "_h_res": _res, "_h_int": _int, "_h_open_bit": _open_bit, "_h_TC": FD_TYPECHARS,
    "_h_open_read": _open_read, "_h_open_write": _open_write, "_h_argstr": _argstr,
    "_h_argidx": _argidx, "_h_rawarg": _rawarg, "_h_args": _args, "_h_buffer": _buffer,
    "_h_fddir": _fddir, "_h_fdfile": _fdfile, "_h_ips": _ips, "_h_ports": _ports,
    "_h_ip": R.ip_value, "_h_fdtypes": _fdtypes, "_h_stdfd": _stdfd, "_h_cwd": _cwd,
    "_h_env": _env, "_h_loginshell": _loginshell, "_h_mount": _mount, "_h_label": _label,
    "_h_cname": _cname, "_h_uid": _uid, "_h_caps": R.caps_string, "_h_fspath": _fspath,
}
