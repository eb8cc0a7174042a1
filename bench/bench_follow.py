"""Follow: what an idle check costs for 20 references, and how soon a push lands on disk.

Twenty rules artifacts (about 64 KB each) are pushed to Debian's docker-registry on 127.0.0.1
and followed. After the first check installs them, idle checks are counted: registry requests
and blob bytes per reference, and the time of one idle check of all 20 against a baseline
measured in the same run, falcoctl's way of checking (a manifest GET per reference, which
returns the body). Then a follower with a 1 s period runs in the background while new versions
are pushed at random moments: the delay from the push to the new file in place, in periods.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REFS = 20
IDLE_TICKS = 5
PUSHES = 5
PERIOD = 1.0


class _Pusher:
    """Pushes ``app<i>`` rules artifacts (about 64 KB) and keeps the index entries for them."""

    def __init__(self, host: str, work: Path) -> None:
        from falcoctl_py.oci.client import RegistryClient

        self.host, self.work = host, work
        self.client = RegistryClient(plain_http=True)
        self.entries: dict[str, SimpleNamespace] = {}

    def push(self, i: int, version: str) -> None:
        from falcoctl_py.push import push_artifact

        src = self.work / "src" / f"r{i}" / f"app{i}_rules.yaml"
        src.parent.mkdir(parents=True, exist_ok=True)
        body = f"- rule: rule {i} {version}\n  desc: {os.urandom(32).hex()}\n"
        src.write_text(body + "# padding\n" * 6500)
        push_artifact(client=self.client, ref=f"{self.host}/rules/app{i}:{version}", files=[src],
                      artifact_type="rulesfile", version=version, tags=["latest"])
        self.entries[f"app{i}"] = SimpleNamespace(registry=self.host, repository=f"rules/app{i}")


def _follower(refs: list[str], client: Any, dirs: Any, work: Path,
              lookup: Callable[[str], Any]) -> Any:
    """A follower of ``refs`` with a PERIOD schedule, checking at once."""
    from falcoctl_py.follow.follower import Follower
    from falcoctl_py.follow.schedule import Schedule, StartupBehavior
    from falcoctl_py.oci.media import Platform

    return Follower(refs=refs, client=client, dirs=dirs, state_dir=work / "state",
                    platform=Platform("linux", "amd64"),
                    schedule=Schedule.from_options(every=f"{PERIOD}s", cron=None),
                    startup=StartupBehavior.immediate, lookup=lookup)


def _idle_checks(follower: Any, client: Any) -> tuple[float, float, float, float]:
    """IDLE_TICKS checks with nothing new: (requests per reference, manifest HEADs per
    reference, blob bytes per check, median seconds per check)."""
    stats = client.stats
    requests, blob_bytes, heads = stats.requests, stats.blob_bytes, stats.manifest_heads
    idle_times = []
    for _ in range(IDLE_TICKS):
        started = time.perf_counter()
        results = follower.tick()
        idle_times.append(time.perf_counter() - started)
        assert all(r.status == "unchanged" for r in results), results
    return ((stats.requests - requests) / (IDLE_TICKS * REFS),
            (stats.manifest_heads - heads) / (IDLE_TICKS * REFS),
            (stats.blob_bytes - blob_bytes) / IDLE_TICKS, statistics.median(idle_times))


def _falcoctl_checks(host: str) -> tuple[float, float]:
    """The baseline, falcoctl's check (a manifest GET per reference): (median seconds per
    check, manifest bytes per check)."""
    from falcoctl_py.oci.client import RegistryClient

    base_times = []
    base_bytes = 0
    with RegistryClient(plain_http=True) as base:
        for _ in range(IDLE_TICKS):
            started = time.perf_counter()
            for i in range(REFS):
                base_bytes += len(base.get_manifest(f"{host}/rules/app{i}", "latest").data)
            base_times.append(time.perf_counter() - started)
    return statistics.median(base_times), base_bytes / IDLE_TICKS


def _push_delays(single: Any, pusher: _Pusher, target: Path) -> list[float]:
    """With ``single`` running, PUSHES new versions of app0 at random moments: the delay from
    each push to the new file in place, in periods."""
    stop = threading.Event()
    runner = threading.Thread(target=single.run, args=(stop,))
    runner.start()
    delays = []
    try:
        for n in range(PUSHES):
            time.sleep(random.uniform(0.2, PERIOD))
            version = f"1.{n + 1}.0"
            pusher.push(0, version)
            pushed = time.monotonic()
            while f"rule 0 {version}" not in target.read_text()[:200]:  # the measured delay
                if time.monotonic() - pushed > 10 * PERIOD:
                    raise RuntimeError(f"{version} not installed after 10 periods")
                time.sleep(0.01)
            delays.append((time.monotonic() - pushed) / PERIOD)
    finally:
        stop.set()
        runner.join(10)
    return delays


def main() -> None:
    import shutil

    from falcoctl_py.artifact.install import InstallDirs
    from falcoctl_py.oci.client import RegistryClient
    from tests.realparts import start_registry

    if shutil.which("docker-registry") is None:
        print("skipped: needs docker-registry (make install-test)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    reg = start_registry(work / "registry")
    pusher = _Pusher(reg.host, work)
    client = RegistryClient(plain_http=True)
    try:
        for i in range(REFS):
            pusher.push(i, "1.0.0")
        dirs = InstallDirs(work / "rules", work / "plugins", work / "assets")
        follower = _follower([f"app{i}:latest" for i in range(REFS)], client, dirs, work,
                             pusher.entries.get)
        first = follower.tick()
        assert all(r.status == "updated" for r in first), first
        per_ref, heads_per_ref, bytes_per_tick, idle = _idle_checks(follower, client)
        baseline, base_bytes = _falcoctl_checks(reg.host)
        print(f"idle check of {REFS} references: {per_ref:.2f} registry requests per reference "
              f"({heads_per_ref:.2f} manifest HEAD), {bytes_per_tick:.0f} blob bytes per check "
              "(target: 1 request, 0 bytes)")  # fmt: skip
        print(f"idle check time: {idle * 1000:.1f} ms vs {baseline * 1000:.1f} ms for falcoctl's "
              f"manifest GETs (ratio {idle / baseline:.2f}; GETs moved "
              f"{base_bytes:.0f} manifest bytes per check, HEADs 0)")  # fmt: skip
        single = _follower(["app0:latest"], client, dirs, work, pusher.entries.get)
        delays = _push_delays(single, pusher, dirs.rulesfiles / "app0_rules.yaml")
        print(f"push to file in place: median {statistics.median(delays):.2f} periods, "
              f"max {max(delays):.2f} periods over {PUSHES} pushes (period {PERIOD:g}s; "
              "target: within 2)")  # fmt: skip
    finally:
        client.close()
        pusher.client.close()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
