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
from pathlib import Path
from types import SimpleNamespace

REFS = 20
IDLE_TICKS = 5
PUSHES = 5
PERIOD = 1.0


def main() -> None:
    import shutil

    from falcoctl_py.artifact.install import InstallDirs
    from falcoctl_py.follow.follower import Follower
    from falcoctl_py.follow.schedule import Schedule, StartupBehavior
    from falcoctl_py.oci.client import RegistryClient
    from falcoctl_py.oci.media import Platform
    from falcoctl_py.push import push_artifact
    from tests.realparts import start_registry

    if shutil.which("docker-registry") is None:
        print("skipped: needs docker-registry (make install-test)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    reg = start_registry(work / "registry")
    pusher = RegistryClient(plain_http=True)
    client = RegistryClient(plain_http=True)
    try:
        entries: dict[str, SimpleNamespace] = {}

        def push(i: int, version: str) -> None:
            src = work / "src" / f"r{i}" / f"app{i}_rules.yaml"
            src.parent.mkdir(parents=True, exist_ok=True)
            body = f"- rule: rule {i} {version}\n  desc: {os.urandom(32).hex()}\n"
            src.write_text(body + "# padding\n" * 6500)
            push_artifact(
                client=pusher,
                ref=f"{reg.host}/rules/app{i}:{version}",
                files=[src],
                artifact_type="rulesfile",
                version=version,
                tags=["latest"],
            )
            entries[f"app{i}"] = SimpleNamespace(registry=reg.host, repository=f"rules/app{i}")

        for i in range(REFS):
            push(i, "1.0.0")
        dirs = InstallDirs(work / "rules", work / "plugins", work / "assets")
        follower = Follower(
            refs=[f"app{i}:latest" for i in range(REFS)],
            client=client,
            dirs=dirs,
            state_dir=work / "state",
            platform=Platform("linux", "amd64"),
            schedule=Schedule.from_options(every=f"{PERIOD}s", cron=None),
            startup=StartupBehavior.immediate,
            lookup=entries.get,
        )
        first = follower.tick()
        assert all(r.status == "updated" for r in first), first
        stats = client.stats
        requests, blob_bytes, heads = stats.requests, stats.blob_bytes, stats.manifest_heads
        idle_times = []
        for _ in range(IDLE_TICKS):
            started = time.perf_counter()
            results = follower.tick()
            idle_times.append(time.perf_counter() - started)
            assert all(r.status == "unchanged" for r in results), results
        per_ref = (stats.requests - requests) / (IDLE_TICKS * REFS)
        bytes_per_tick = (stats.blob_bytes - blob_bytes) / IDLE_TICKS
        heads_per_ref = (stats.manifest_heads - heads) / (IDLE_TICKS * REFS)
        base_times = []
        base_bytes = 0
        with RegistryClient(plain_http=True) as base:
            for _ in range(IDLE_TICKS):
                started = time.perf_counter()
                for i in range(REFS):
                    base_bytes += len(base.get_manifest(f"{reg.host}/rules/app{i}", "latest").data)
                base_times.append(time.perf_counter() - started)
        idle, baseline = statistics.median(idle_times), statistics.median(base_times)
        print(f"idle check of {REFS} references: {per_ref:.2f} registry requests per reference "
              f"({heads_per_ref:.2f} manifest HEAD), {bytes_per_tick:.0f} blob bytes per check "
              "(target: 1 request, 0 bytes)")  # fmt: skip
        print(f"idle check time: {idle * 1000:.1f} ms vs {baseline * 1000:.1f} ms for falcoctl's "
              f"manifest GETs (ratio {idle / baseline:.2f}; GETs moved "
              f"{base_bytes / IDLE_TICKS:.0f} manifest bytes per check, HEADs 0)")  # fmt: skip

        stop = threading.Event()
        single = Follower(
            refs=["app0:latest"],
            client=client,
            dirs=dirs,
            state_dir=work / "state",
            platform=Platform("linux", "amd64"),
            schedule=Schedule.from_options(every=f"{PERIOD}s", cron=None),
            startup=StartupBehavior.immediate,
            lookup=entries.get,
        )
        runner = threading.Thread(target=single.run, args=(stop,))
        runner.start()
        delays = []
        target = dirs.rulesfiles / "app0_rules.yaml"
        try:
            for n in range(PUSHES):
                time.sleep(random.uniform(0.2, PERIOD))
                version = f"1.{n + 1}.0"
                push(0, version)
                pushed = time.monotonic()
                while f"rule 0 {version}" not in target.read_text()[:200]:
                    if time.monotonic() - pushed > 10 * PERIOD:
                        raise RuntimeError(f"{version} not installed after 10 periods")
                    time.sleep(0.01)
                delays.append((time.monotonic() - pushed) / PERIOD)
        finally:
            stop.set()
            runner.join(10)
        print(f"push to file in place: median {statistics.median(delays):.2f} periods, "
              f"max {max(delays):.2f} periods over {PUSHES} pushes (period {PERIOD:g}s; "
              "target: within 2)")  # fmt: skip
    finally:
        client.close()
        pusher.close()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
