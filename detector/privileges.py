"""Which of the capabilities the eBPF detector needs this process lacks (``driver check``).

Being root is not enough: a container run with ``--cap-drop=all`` or a ``setpriv``'d shell has
euid 0 and an empty effective set. The detector needs, in the effective set (Falco's
least-privileged set for its eBPF drivers):

* CAP_BPF and CAP_PERFMON (kernel 5.8+), or CAP_SYS_ADMIN: load programs, open tracepoints;
* CAP_SYS_RESOURCE where BPF memory is charged to RLIMIT_MEMLOCK (kernels before 5.11) and
  that limit is not already unlimited;
* CAP_SYS_PTRACE: read /proc/PID/{exe,cwd,fd,environ} of other users' processes.
"""

from __future__ import annotations

import re
import resource
from dataclasses import dataclass

CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
CAP_PERFMON = 38
CAP_BPF = 39
NAMES = {CAP_SYS_PTRACE: "CAP_SYS_PTRACE", CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
         CAP_SYS_RESOURCE: "CAP_SYS_RESOURCE", CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}
SPLIT_CAPS_SINCE = (5, 8)  # CAP_BPF and CAP_PERFMON exist
MEMCG_BPF_SINCE = (5, 11)  # BPF memory charged to the memory cgroup, not RLIMIT_MEMLOCK


@dataclass(frozen=True)
class Missing:
    """The capabilities lacking: ``required`` ones (all of them) and ``bpf`` (any one set)."""

    bpf: tuple[str, ...]
    required: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every capability to add, BPF's first."""
        return self.bpf + self.required

    @property
    def can_load_bpf(self) -> bool:
        """Whether programs can be loaded and attached (the BPF part is satisfied)."""
        return not self.bpf


def effective() -> int:
    """This process's effective capability set (``CapEff`` of /proc/self/status; 0 unknown)."""
    value = _status_field("CapEff")
    try:
        return int(value, 16) if value else 0
    except ValueError:
        return 0


def seccomp_filtered() -> bool:
    """Whether a seccomp filter applies to this process (a container runtime's default
    profile lets bpf(2) through only with CAP_SYS_ADMIN)."""
    return _status_field("Seccomp") == "2"


def _status_field(name: str) -> str | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key == name:
                    return value.strip()
    except OSError:
        pass
    return None


def kernel_version(release: str) -> tuple[int, int]:
    """``(major, minor)`` of a release string like ``6.1.0-18-amd64`` (``(0, 0)`` unknown)."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def memlock_unlimited() -> bool:
    """Whether RLIMIT_MEMLOCK is already unlimited (no CAP_SYS_RESOURCE needed to raise it)."""
    return resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY


def missing(caps: int, release: str, *, memlock_unlimited: bool) -> Missing:
    """The capabilities the detector needs that ``caps`` (an effective set) lacks."""

    def has(cap: int) -> bool:
        return bool(caps >> cap & 1)

    version = kernel_version(release)
    bpf: tuple[str, ...] = ()
    if not has(CAP_SYS_ADMIN):
        if version < SPLIT_CAPS_SINCE:
            bpf = (NAMES[CAP_SYS_ADMIN],)
        elif not (has(CAP_BPF) and has(CAP_PERFMON)):
            bpf = tuple(NAMES[c] for c in (CAP_BPF, CAP_PERFMON) if not has(c))
    required = [CAP_SYS_PTRACE]
    if version < MEMCG_BPF_SINCE and not memlock_unlimited:
        required.append(CAP_SYS_RESOURCE)
    return Missing(bpf, tuple(NAMES[c] for c in required if not has(c)))


def fix(lack: Missing) -> str:
    """How to grant what is lacking, for a container and for a host shell."""
    adds = " ".join(f"--cap-add={n.removeprefix('CAP_')}" for n in lack.names)
    parts = list(lack.required)
    if lack.bpf:
        alt = "" if lack.bpf == (NAMES[CAP_SYS_ADMIN],) else " (or CAP_SYS_ADMIN)"
        parts.insert(0, " and ".join(lack.bpf) + alt)
    return (f"grant {', '.join(parts)}: e.g. `podman run {adds}`, or run as root without "
            "dropping capabilities")
