"""`driver check` names the capabilities the detector lacks, root or not (issue: root with
every capability dropped was reported "privileges ok")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

from detector import privileges as p
from tests.realparts import need, need_bpf, need_root

ALL = (1 << 41) - 1
CLI = "import sys; from falcoctl_py.cli.main import main; sys.exit(main())"


def _without(*caps: int) -> int:
    mask = ALL
    for cap in caps:
        mask &= ~(1 << cap)
    return mask


def test_full_set_lacks_nothing_and_an_empty_set_lacks_all_on_a_new_kernel() -> None:
    assert p.missing(ALL, "6.1.0-18-amd64", memlock_unlimited=False).names == ()
    lack = p.missing(0, "6.1.0-18-amd64", memlock_unlimited=False)
    assert lack.names == ("CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE") and not lack.can_load_bpf
    assert "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)" in p.fix(lack)
    assert "--cap-add=SYS_PTRACE" in p.fix(lack)


def test_sys_admin_stands_in_for_bpf_and_perfmon() -> None:
    lack = p.missing(_without(p.CAP_BPF, p.CAP_PERFMON), "5.15.0", memlock_unlimited=True)
    assert lack.names == () and lack.can_load_bpf
    lack = p.missing(_without(p.CAP_SYS_ADMIN, p.CAP_PERFMON), "5.15.0", memlock_unlimited=True)
    assert lack.names == ("CAP_PERFMON",)


def test_an_old_kernel_needs_sys_admin_and_sys_resource_unless_memlock_is_unlimited() -> None:
    caps = _without(p.CAP_SYS_ADMIN, p.CAP_SYS_RESOURCE)
    assert p.missing(caps, "5.4.0-150-generic", memlock_unlimited=False).names == (
        "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE")
    assert p.missing(caps, "5.4.0", memlock_unlimited=True).names == ("CAP_SYS_ADMIN",)
    assert p.missing(caps, "5.10.0", memlock_unlimited=False).names == ("CAP_SYS_RESOURCE",)
    assert p.missing(_without(p.CAP_SYS_RESOURCE), "5.11.0", memlock_unlimited=False).names == ()


def _check_under_setpriv(bounding: str) -> dict[str, Any]:
    need_root()
    need(shutil.which("setpriv") is not None, "setpriv (util-linux)")
    proc = subprocess.run(
        ["setpriv", "--inh-caps=-all", f"--bounding-set={bounding}", "--",
         sys.executable, "-c", CLI, "driver", "check", "-o", "json"],
        capture_output=True, text=True, timeout=120, check=False)
    report: dict[str, Any] = json.loads(proc.stdout)
    report["rc"] = proc.returncode
    report["by_name"] = {c["name"]: c for c in report["checks"]}
    return report


def test_root_with_every_capability_dropped_is_not_privileged() -> None:
    report = _check_under_setpriv("-all")
    priv = report["by_name"]["privileges"]
    assert report["rc"] == 1 and not report["ok"] and not priv["ok"]
    assert "euid 0" in priv["detail"]
    assert "missing CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE" in priv["detail"]
    assert "--cap-add=BPF" in priv["fix"]
    bpf = report["by_name"]["bpf"]
    assert not bpf["ok"] and bpf["detail"] == "not tried without CAP_BPF and CAP_PERFMON"


def test_root_without_ptrace_is_told_that_one_only() -> None:
    need_bpf()
    report = _check_under_setpriv("-sys_ptrace")
    priv = report["by_name"]["privileges"]
    assert report["rc"] == 1 and not priv["ok"]
    assert priv["detail"].endswith("missing CAP_SYS_PTRACE")
    assert report["by_name"]["bpf"]["ok"]


def _check_in_image(*flags: str) -> dict[str, Any]:
    from tests.kube_parts import built_image
    from tests.realparts import PODMAN_BASE, PODMAN_LIMITS

    image = built_image()
    proc = subprocess.run(
        ["podman", *PODMAN_BASE, "run", "--rm", *PODMAN_LIMITS, *flags, image,
         "driver", "check", "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False)
    report: dict[str, Any] = json.loads(proc.stdout)
    report["by_name"] = {c["name"]: c for c in report["checks"]}
    return report


def test_a_container_with_every_capability_dropped_is_told_what_to_add() -> None:
    report = _check_in_image("--cap-drop=all")
    priv = report["by_name"]["privileges"]
    assert not report["ok"] and not priv["ok"]
    assert "missing CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE" in priv["detail"]


def test_a_seccomp_profile_blocking_bpf_is_named() -> None:
    """The runtime's default seccomp profile lets bpf(2) through only with CAP_SYS_ADMIN."""
    need_bpf()
    report = _check_in_image("--cap-drop=all", "--cap-add=BPF", "--cap-add=PERFMON",
                             "--cap-add=SYS_PTRACE")
    assert report["by_name"]["privileges"]["ok"]
    bpf = report["by_name"]["bpf"]
    assert not bpf["ok"] and bpf["detail"].endswith("EPERM (a seccomp filter applies)")
    assert "seccomp=unconfined" in bpf["fix"]
