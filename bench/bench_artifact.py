"""Artifact install from a loopback registry vs ``skopeo copy`` of the same artifacts.

Ten artifacts of about 1 MB (7 rules files depending on 3 plugins) are pushed to Debian's
docker-registry on 127.0.0.1. Timed in the same run: ``install_artifacts`` of the 7 rules files
(which resolves and installs the 3 plugins), the ``falcoctl-py artifact install`` command, and
``skopeo copy`` of each of the 10 to a ``dir:`` destination. Then a repeated install with nothing
changed, counting blob downloads and manifest requests per artifact.

Last, the cost of issue 10's installer checks (the bounded tar reader, reserved names, the
verified journal, generations behind one link): the same install timed in child processes with
this tree and with the baseline commit before those checks (``git archive``), interleaved in
one run, as a ratio (target: within 5%).
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROUNDS = 5
SIZE = 1_000_000
BASELINE = "49031b6"  # main before the installer's issue-10 checks
CHECK_ROUNDS = 7

CHILD = """
import json, sys, tempfile, time
from pathlib import Path
from types import SimpleNamespace
try:
    from falcoctl_py.artifact.install import InstallDirs, install_artifacts
except ImportError:  # the baseline's flat layout
    from falcoctl_py.install import InstallDirs, install_artifacts
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import Platform
args = json.loads(sys.argv[1])
entries = {n: SimpleNamespace(**e) for n, e in args["entries"].items()}
times = []
for _ in range(args["rounds"]):
    dest = Path(tempfile.mkdtemp(dir=args["work"]))
    with RegistryClient(plain_http=True) as client:
        started = time.perf_counter()
        install_artifacts(refs=args["refs"], client=client, lookup=entries.get,
                          dirs=InstallDirs(dest / "r", dest / "p", dest / "a"),
                          state_dir=dest / "s", platform=Platform("linux", "amd64"))
        times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def _tar_gz(name: str, data: bytes) -> bytes:
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1)


def main() -> None:
    from falcoctl_py.artifact.install import InstallDirs, install_artifacts
    from falcoctl_py.oci.client import RegistryClient
    from falcoctl_py.oci.media import Platform
    from falcoctl_py.push import push_artifact
    from tests.realparts import start_registry

    skopeo = shutil.which("skopeo")
    if shutil.which("docker-registry") is None or skopeo is None:
        print("skipped: needs docker-registry and skopeo (make install-test)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-artifact-"))
    reg = start_registry(work / "registry")
    try:
        entries: dict[str, SimpleNamespace] = {}
        refs: list[str] = []
        full: list[str] = []
        with RegistryClient(plain_http=True) as client:
            for i in range(3):
                name = f"plugin{i}"
                src = work / "src" / f"lib{name}.tar.gz"
                src.parent.mkdir(parents=True, exist_ok=True)
                src.write_bytes(_tar_gz(f"lib{name}.so", os.urandom(SIZE)))
                push_artifact(
                    client=client,
                    ref=reg.ref(f"plugins/{name}", "1.0.0"),
                    files=[src],
                    artifact_type="plugin",
                    version="1.0.0",
                    platforms=["linux/amd64"],
                    add_floating_tags=True,
                )
                entries[name] = SimpleNamespace(
                    name=name, registry=reg.host, repository=f"plugins/{name}"
                )
                full.append(reg.ref(f"plugins/{name}", "1.0.0"))
            for i in range(7):
                name = f"rules{i}"
                src = work / "src" / f"{name}.tar.gz"
                src.write_bytes(_tar_gz(f"{name}.yaml", os.urandom(SIZE)))
                push_artifact(
                    client=client,
                    ref=reg.ref(f"rules/{name}", "1.0.0"),
                    files=[src],
                    artifact_type="rulesfile",
                    version="1.0.0",
                    depends_on=[f"plugin{i % 3}:1.0.0"],
                    add_floating_tags=True,
                )
                entries[name] = SimpleNamespace(
                    name=name, registry=reg.host, repository=f"rules/{name}"
                )
                refs.append(f"{name}:1")
                full.append(reg.ref(f"rules/{name}", "1.0.0"))

        def ours(round_: int) -> tuple[float, object]:
            dest = work / f"ours{round_}"
            with RegistryClient(plain_http=True) as client:
                started = time.perf_counter()
                result = install_artifacts(
                    refs=refs,
                    client=client,
                    lookup=entries.get,
                    dirs=InstallDirs(dest / "rules", dest / "plugins", dest / "assets"),
                    state_dir=dest / "state",
                    platform=Platform("linux", "amd64"),
                )
                return time.perf_counter() - started, result

        def theirs(round_: int) -> float:
            (work / f"skopeo{round_}").mkdir()
            started = time.perf_counter()
            for i, ref in enumerate(full):
                subprocess.run(
                    [
                        skopeo,
                        "copy",
                        "-q",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"dir:{work / f'skopeo{round_}' / str(i)}",
                    ],
                    check=True,
                    capture_output=True,
                )
            return time.perf_counter() - started

        index = work / "index.yaml"
        import yaml

        index.write_text(
            yaml.safe_dump(
                [
                    {
                        "name": e.name,
                        "type": "x",
                        "registry": e.registry,
                        "repository": e.repository,
                    }
                    for e in entries.values()
                ]
            )
        )
        config = work / "falcoctl.yaml"
        config.write_text(
            yaml.safe_dump(
                {"indexes": [{"name": "bench", "url": f"file://{index}", "backend": "file"}]}
            )
        )
        # as installed for users: byte-code cached (this dev machine sets PYTHONDONTWRITEBYTECODE)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["HOME"] = str(work / "home")

        def cli(round_: int) -> float:
            dest = work / f"cli{round_}"
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "falcoctl_py.cli.main",
                    "--config",
                    str(config),
                    "artifact",
                    "install",
                    *refs,
                    "--plain-http",
                    "--platform",
                    "linux/amd64",
                    "--rulesfiles-dir",
                    str(dest / "r"),
                    "--plugins-dir",
                    str(dest / "p"),
                    "--state-dir",
                    str(dest / "s"),
                ],
                check=True,
                capture_output=True,
                env=env,
            )
            return time.perf_counter() - started

        cli(99)  # warm-up: byte-code cache
        ours_t, theirs_t, cli_t = [], [], []
        for r in range(ROUNDS):
            elapsed, result = ours(r)
            ours_t.append(elapsed)
            theirs_t.append(theirs(r))
            cli_t.append(cli(r))
        count = len(result.artifacts)  # type: ignore[attr-defined]
        a, b, c = (statistics.median(x) for x in (ours_t, theirs_t, cli_t))
        print(f"install {count} artifacts (~1 MB each, with dependencies), median of {ROUNDS}:")
        print(f"  falcoctl-py install_artifacts: {a * 1000:8.1f} ms")
        print(f"  falcoctl-py CLI (process):     {c * 1000:8.1f} ms")
        print(f"  skopeo copy x{len(full)} (dir:):       {b * 1000:8.1f} ms")
        print(
            f"  ratio core/skopeo: {a / b:.2f}x   ratio CLI/skopeo: {c / b:.2f}x   (target <= 1.2x)"
        )

        dest = work / "ours0"
        with RegistryClient(plain_http=True) as client:
            again = install_artifacts(
                refs=refs,
                client=client,
                lookup=entries.get,
                dirs=InstallDirs(dest / "rules", dest / "plugins", dest / "assets"),
                state_dir=dest / "state",
                platform=Platform("linux", "amd64"),
            )
        roots = len(refs)
        kept = sum(a.status == "satisfied" for a in again.artifacts)
        print(
            f"repeated install, nothing changed: blob downloads {again.blob_downloads}, "
            f"manifest requests {again.manifest_requests} for {roots} requested artifacts "
            f"({again.manifest_requests / roots:.2f} per artifact; {kept} dependencies kept "
            f"from the state with no request), requests in total {again.requests}"
        )
        checks_vs_baseline(work, entries, refs)
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def checks_vs_baseline(work: Path, entries: dict[str, SimpleNamespace], refs: list[str]) -> None:
    """The same install with this tree and with :data:`BASELINE`, interleaved: the ratio."""
    import json

    repo = Path(__file__).resolve().parents[1]
    base = work / "baseline"
    base.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", BASELINE, "falcoctl_py"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        print(f"checks vs baseline: skipped (no git history with {BASELINE})")
        return
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    args = json.dumps(
        {
            "entries": {n: vars(e) for n, e in entries.items()},
            "refs": refs,
            "rounds": 3,
            "work": str(work),
        }
    )
    times: dict[str, list[float]] = {"baseline": [], "checks": []}
    for _ in range(CHECK_ROUNDS):
        for label, path in (("baseline", base), ("checks", repo)):
            env = {**os.environ, "PYTHONPATH": str(path)}
            out = subprocess.run(
                [sys.executable, "-c", CHILD, args],
                capture_output=True,
                check=True,
                env=env,
                cwd=str(work),
                text=True,
            )
            times[label].extend(json.loads(out.stdout.splitlines()[-1]))
    old, new = (statistics.median(times[k]) for k in ("baseline", "checks"))
    print(
        f"installer checks (issue 10) vs {BASELINE}, same install, median of "
        f"{len(times['checks'])} each, interleaved:"
    )
    print(f"  baseline {old * 1000:8.1f} ms   with checks {new * 1000:8.1f} ms")
    print(f"  ratio checks/baseline: {new / old:.3f}x   (target <= 1.05x)")


if __name__ == "__main__":
    main()
