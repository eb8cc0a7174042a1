"""Preparing the running kernel for the eBPF event source: check, install, printenv, cleanup.

The engine is BCC (Debian's ``python3-bpfcc``) on tracepoints. BCC compiles with the headers of
``/lib/modules/$(uname -r)/build``; a kernel without its own headers works with Debian's
``linux-headers-amd64`` linked there (struct layouts come from BTF, never from those headers).
Every function here takes keyword arguments and returns plain dataclasses.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from detector import privileges
from detector.errors import DetectorError

TRACEFS = "/sys/kernel/tracing"
BTF_PATH = "/sys/kernel/btf/vmlinux"
PACKAGES = ("python3-bpfcc", "linux-headers-amd64")
# A file that records which links/mounts `driver install` made, so `driver cleanup` removes
# exactly those and nothing a packager or administrator made.
STATE_FILE = "/var/lib/falcoctl-py/driver-install.json"
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2


@dataclass
class Check:
    """One prerequisite: whether it holds, what was found, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class CheckReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass
class InstallReport:
    """What ``driver install`` did; ``actions`` is empty when everything was in place."""

    actions: list[str] = field(default_factory=list)
    release: str = ""


@dataclass
class DriverEnv:
    """The environment the eBPF source runs in (``driver printenv``)."""

    values: dict[str, str]


def kernel_release() -> str:
    return platform.release()


def modules_dir(*, root: str = "/", release: str | None = None) -> Path:
    return Path(root, "lib/modules", release or kernel_release())


def _headers_dirs(root: str = "/") -> tuple[Path, Path] | None:
    """Debian's newest installed ``linux-headers-<v>-amd64`` and its ``-common`` sibling."""
    found = []
    for path in glob.glob(os.path.join(root, "usr/src/linux-headers-*-amd64")):
        common = re.sub(r"-amd64$", "-common", path)
        if os.path.isdir(common) and os.path.isfile(os.path.join(path, "Makefile")):
            found.append((Path(path), Path(common)))
    if not found:
        return None
    return sorted(found, key=lambda p: _version_key(p[0].name))[-1]


def _version_key(name: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", name)]


def _tracefs_mounted(path: str = TRACEFS) -> bool:
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs" and parts[1] == path:
                    return True
    except OSError:
        return False
    return os.path.isdir(os.path.join(path, "events", "raw_syscalls"))


def _bpf_syscall_works() -> tuple[bool, str]:
    """Create and close a tiny BPF array map through the bpf(2) syscall."""
    from detector.bpf.loader import bpf_syscall

    class MapAttr(ctypes.Structure):
        _fields_ = [
            ("map_type", ctypes.c_uint32),
            ("key_size", ctypes.c_uint32),
            ("value_size", ctypes.c_uint32),
            ("max_entries", ctypes.c_uint32),
        ]

    try:
        fd = bpf_syscall(BPF_MAP_CREATE, MapAttr(BPF_MAP_TYPE_ARRAY, 4, 4, 1))
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return False, f"bpf(BPF_MAP_CREATE) failed: {name}"
    except DetectorError as exc:  # an architecture without a known bpf(2) number
        return False, exc.one_line()
    os.close(fd)
    return True, "bpf(2) creates maps"


def _bcc_importable() -> tuple[bool, str]:
    try:
        import bcc  # noqa: F401
    except Exception as exc:  # any failure to load libbcc counts
        return False, f"import bcc failed: {exc}"
    return True, "bcc imports (python3-bpfcc)"


def check(*, root: str = "/") -> CheckReport:
    """Every prerequisite of the eBPF source, each with a fix when it fails."""
    checks: list[Check] = []
    caps = privileges.effective()
    lack = privileges.missing(caps, kernel_release(),
                              memlock_unlimited=privileges.memlock_unlimited())
    detail = f"euid {os.geteuid()}, CapEff {caps:#x}"
    if lack.names:
        detail += f", missing {', '.join(lack.names)}"
    checks.append(Check("privileges", not lack.names, detail, privileges.fix(lack)))
    ok, detail = (_bpf_syscall_works() if lack.can_load_bpf
                  else (False, f"not tried without {' and '.join(lack.bpf)}"))
    fix = "use a kernel with CONFIG_BPF_SYSCALL and run as root"
    if not ok and detail.endswith("EPERM") and privileges.seccomp_filtered():
        detail += " (a seccomp filter applies)"
        fix = ("a seccomp profile blocks bpf(2): run the container with --privileged, "
               "--cap-add=SYS_ADMIN or --security-opt seccomp=unconfined")
    checks.append(Check("bpf", ok, detail, fix))
    btf = os.path.join(root, BTF_PATH.lstrip("/"))
    checks.append(
        Check(
            "btf",
            os.path.isfile(btf),
            btf if os.path.isfile(btf) else f"{btf} is missing",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )
    )
    mounted = _tracefs_mounted()
    checks.append(
        Check(
            "tracefs",
            mounted,
            f"tracefs at {TRACEFS}" if mounted else f"tracefs is not mounted at {TRACEFS}",
            f"run `falcoctl-py driver install` (mount -t tracefs tracefs {TRACEFS})",
        )
    )
    build = modules_dir(root=root) / "build"
    has_headers = (build / "Makefile").is_file() and (build / "include").is_dir()
    checks.append(
        Check(
            "kernel-headers",
            has_headers,
            f"{build} -> {os.path.realpath(build)}" if has_headers else f"{build} is missing",
            "run `falcoctl-py driver install` (installs linux-headers-amd64 and links it there)",
        )
    )
    ok, detail = _bcc_importable()
    checks.append(
        Check("bcc", ok, detail, "run `falcoctl-py driver install` (apt-get install python3-bpfcc)")
    )
    return CheckReport(checks)


def _missing_packages() -> list[str]:
    missing = []
    for pkg in PACKAGES:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", pkg],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        except FileNotFoundError:
            return []  # not a Debian system: nothing we can install
        if "install ok installed" not in out:
            missing.append(pkg)
    return missing


def _load_state(root: str) -> dict[str, list[str]]:
    try:
        data = json.loads(Path(root, STATE_FILE.lstrip("/")).read_text())
    except (OSError, ValueError):
        return {"links": [], "mounts": [], "dirs": []}
    return {k: list(data.get(k, [])) for k in ("links", "mounts", "dirs")}


def _save_state(root: str, state: dict[str, list[str]]) -> None:
    from falcoctl_py.textio import write_atomic

    path = Path(root, STATE_FILE.lstrip("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(state, indent=2) + "\n").encode())


def _link(link: Path, target: Path, state: dict[str, list[str]], actions: list[str]) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.exists() or link.is_symlink():
        if link.is_symlink() and not link.exists():
            link.unlink()  # a dangling link (old headers removed): replace it
        else:
            return  # real headers or someone else's link: keep them
    link.symlink_to(target)
    if str(link) not in state["links"]:
        state["links"].append(str(link))
    actions.append(f"linked {link} -> {target}")


def install(
    *, root: str = "/", release: str | None = None, packages: bool = True, mount: bool = True
) -> InstallReport:
    """Install missing Debian packages, link the headers for this kernel, mount tracefs."""
    report = InstallReport(release=release or kernel_release())
    if os.geteuid() != 0:
        raise DetectorError(
            "driver install needs root", hint="run it as root (sudo falcoctl-py driver install)"
        )
    state = _load_state(root)
    if packages and root == "/":
        missing = _missing_packages()
        if missing:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            for cmd in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            ):
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
                if proc.returncode != 0:
                    raise DetectorError(
                        f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()[-300:]}",
                        hint="check the apt sources and network, then run it again",
                    )
            report.actions.append(f"installed {' '.join(missing)}")
    headers = _headers_dirs(root)
    if headers is None:
        raise DetectorError(
            f"no Debian kernel headers under {root.rstrip('/')}/usr/src",
            hint="apt-get install linux-headers-amd64",
        )
    moddir = modules_dir(root=root, release=report.release)
    if not moddir.is_dir():
        moddir.mkdir(parents=True)
        state["dirs"].append(str(moddir))
        report.actions.append(f"created {moddir}")
    _link(moddir / "build", headers[0], state, report.actions)
    _link(moddir / "source", headers[1], state, report.actions)
    if mount and root == "/" and not _tracefs_mounted():
        os.makedirs(TRACEFS, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tracefs", "tracefs", TRACEFS],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise DetectorError(
                f"mounting tracefs at {TRACEFS} failed: {proc.stderr.strip()}",
                hint="use a kernel with CONFIG_TRACING and run as root",
            )
        state["mounts"].append(TRACEFS)
        report.actions.append(f"mounted tracefs at {TRACEFS}")
    if report.actions:
        _save_state(root, state)
    return report


def ensure_ready() -> None:
    """Install what is missing when root and anything is missing (for tests and `make run`)."""
    if os.geteuid() != 0:
        return
    if not check().ok:
        install()


def cleanup(*, root: str = "/") -> InstallReport:
    """Remove the links, directories and mounts ``driver install`` made, nothing else."""
    report = InstallReport(release=kernel_release())
    state = _load_state(root)
    for link in state["links"]:
        path = Path(link)
        if path.is_symlink():
            path.unlink()
            report.actions.append(f"removed {link}")
    for d in reversed(state["dirs"]):
        path = Path(d)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
            report.actions.append(f"removed {d}")
    for mnt in state["mounts"]:
        if _tracefs_mounted(mnt):
            proc = subprocess.run(["umount", mnt], capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                report.actions.append(f"unmounted {mnt}")
    state_path = Path(root, STATE_FILE.lstrip("/"))
    if state_path.exists():
        state_path.unlink()
    return report


def printenv(*, root: str = "/") -> DriverEnv:
    """The values the eBPF source uses: kernel, headers, BTF, tracefs, BCC."""
    build = modules_dir(root=root) / "build"
    try:
        import bcc

        bcc_where = os.path.dirname(bcc.__file__)
    except Exception:
        bcc_where = ""
    values = {
        "DRIVER": "ebpf-bcc",
        "KERNEL_RELEASE": kernel_release(),
        "KERNEL_VERSION": platform.version(),
        "ARCH": platform.machine(),
        "KERNEL_HEADERS": os.path.realpath(build) if build.exists() else "",
        "BTF": BTF_PATH if os.path.isfile(BTF_PATH) else "",
        "TRACEFS": TRACEFS if _tracefs_mounted() else "",
        "BCC": bcc_where,
        "CLANG_FLAGS": "",
    }
    try:
        from detector.bpf.btf import cflags

        values["CLANG_FLAGS"] = " ".join(cflags())
    except (DetectorError, OSError):  # BTF missing or unreadable: printenv prints the rest
        pass
    return DriverEnv(values)


__all__ = [
    "Check",
    "CheckReport",
    "DriverEnv",
    "InstallReport",
    "check",
    "cleanup",
    "ensure_ready",
    "install",
    "printenv",
]
