"""A process's CPU time to the nanosecond: its own cgroup v1 ``cpuacct`` group.

``/proc/PID/stat`` counts CPU in clock ticks (10 ms here), which is the size of a small
workload's whole detector cost. A ``cpuacct`` group counts every thread and child of the
process in ns, exited threads included. Without a writable ``cpuacct`` hierarchy the meter
falls back to the ticks of ``/proc/PID/stat`` (and says so in ``resolution``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


@dataclass
class CpuMeter:
    """CPU seconds used by ``pid`` (and what it starts) since it began."""

    pid: int
    group: Path | None = None

    @classmethod
    def attach(cls, pid: int) -> CpuMeter:
        """Move ``pid`` into a ``cpuacct`` group of its own when the hierarchy allows it."""
        group = CPUACCT / f"falcoctl-py-bench-{pid}"
        try:
            group.mkdir()
            (group / "cgroup.procs").write_text(f"{pid}\n")
        except OSError:
            if group.is_dir():
                group.rmdir()
            return cls(pid)
        return cls(pid, group)

    @property
    def resolution(self) -> str:
        """How finely :meth:`seconds` counts."""
        return "ns (cpuacct)" if self.group else "clock ticks (/proc/PID/stat)"

    def seconds(self) -> float:
        """CPU time (user + system) so far."""
        if self.group is not None:
            return int((self.group / "cpuacct.usage").read_text()) / 1e9
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def detach(self) -> None:
        """Remove the group once the process has exited (its tasks are gone)."""
        if self.group is not None:
            with contextlib.suppress(OSError):  # a straggling child: the group stays, empty later
                self.group.rmdir()
            self.group = None
