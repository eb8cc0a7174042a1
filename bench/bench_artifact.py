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
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROUNDS = 5
SIZE = 1_000_000
BASELINE = "49031b6"  # main before the installer's issue-10 checks
CHECK_ROUNDS = 7

CHILD = """
import json, sys, tempfile, time
from pathlib import Path
from types import SimpleNamespace
# The baseline's flat layout first: the editable install's finder would otherwise supply this
# tree's falcoctl_py.artifact to the baseline (a module the baseline lacks), mixing the trees.
try:
    from falcoctl_py.install import InstallDirs, install_artifacts
except ImportError:  # this tree
    from falcoctl_py.artifact.install import InstallDirs, install_artifacts
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


@dataclass
class _Pushed:
    """The artifacts in the registry: index entries, the rules refs installed, every full ref."""

    entries: dict[str, SimpleNamespace] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)  # "rules<i>:1", what is installed
    full: list[str] = field(default_factory=list)  # host/repo:1.0.0 of all ten, for skopeo


def _push_all(reg: Any, work: Path) -> _Pushed:
    """3 plugins and 7 rules files (each depending on a plugin) of SIZE random bytes."""
    from falcoctl_py.oci.client import RegistryClient
    from falcoctl_py.push import push_artifact

    pushed = _Pushed()
    (work / "src").mkdir(parents=True, exist_ok=True)
    with RegistryClient(plain_http=True) as client:
        for kind, count in (("plugin", 3), ("rules", 7)):
            for i in range(count):
                name = f"{kind}{i}"
                repository = f"{'plugins' if kind == 'plugin' else 'rules'}/{name}"
                member = f"lib{name}.so" if kind == "plugin" else f"{name}.yaml"
                src = work / "src" / f"{'lib' if kind == 'plugin' else ''}{name}.tar.gz"
                src.write_bytes(_tar_gz(member, os.urandom(SIZE)))
                extra: dict[str, Any] = ({"platforms": ["linux/amd64"]} if kind == "plugin"
                                         else {"depends_on": [f"plugin{i % 3}:1.0.0"]})
                push_artifact(client=client, ref=reg.ref(repository, "1.0.0"), files=[src],
                              artifact_type="plugin" if kind == "plugin" else "rulesfile",
                              version="1.0.0", add_floating_tags=True, **extra)
                pushed.entries[name] = SimpleNamespace(name=name, registry=reg.host,
                                                       repository=repository)
                pushed.full.append(reg.ref(repository, "1.0.0"))
                if kind == "rules":
                    pushed.refs.append(f"{name}:1")
    return pushed


def _install(pushed: _Pushed, dest: Path) -> tuple[float, Any]:
    """``install_artifacts`` of the rules refs into ``dest``: (seconds, result)."""
    from falcoctl_py.artifact.install import InstallDirs, install_artifacts
    from falcoctl_py.oci.client import RegistryClient
    from falcoctl_py.oci.media import Platform

    with RegistryClient(plain_http=True) as client:
        started = time.perf_counter()
        result = install_artifacts(
            refs=pushed.refs, client=client, lookup=pushed.entries.get,
            dirs=InstallDirs(dest / "rules", dest / "plugins", dest / "assets"),
            state_dir=dest / "state", platform=Platform("linux", "amd64"))
        return time.perf_counter() - started, result


def _skopeo_copy(skopeo: str, full: list[str], dest: Path) -> float:
    """Seconds for ``skopeo copy`` of every artifact to a ``dir:`` under ``dest``."""
    dest.mkdir()
    started = time.perf_counter()
    for i, ref in enumerate(full):
        subprocess.run([skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                        f"dir:{dest / str(i)}"], check=True, capture_output=True)
    return time.perf_counter() - started


def _cli_config(work: Path, pushed: _Pushed) -> Path:
    """A falcoctl.yaml whose file index lists the pushed artifacts."""
    import yaml

    index = work / "index.yaml"
    index.write_text(yaml.safe_dump([
        {"name": e.name, "type": "x", "registry": e.registry, "repository": e.repository}
        for e in pushed.entries.values()]))
    config = work / "falcoctl.yaml"
    config.write_text(yaml.safe_dump(
        {"indexes": [{"name": "bench", "url": f"file://{index}", "backend": "file"}]}))
    return config


def _cli_install(config: Path, refs: list[str], dest: Path, env: dict[str, str]) -> float:
    """Seconds for the ``falcoctl-py artifact install`` command, a new process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "falcoctl_py.cli.main", "--config", str(config), "artifact",
         "install", *refs, "--plain-http", "--platform", "linux/amd64",
         "--rulesfiles-dir", str(dest / "r"), "--plugins-dir", str(dest / "p"),
         "--state-dir", str(dest / "s")],
        check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def _install_vs_skopeo(work: Path, pushed: _Pushed, skopeo: str) -> None:
    """ROUNDS of the core install, skopeo copy and the CLI, interleaved: medians and ratios."""
    config = _cli_config(work, pushed)
    # as installed for users: byte-code cached (this dev machine sets PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["HOME"] = str(work / "home")
    _cli_install(config, pushed.refs, work / "cli99", env)  # warm-up: byte-code cache
    ours_t, theirs_t, cli_t = [], [], []
    count = 0
    for r in range(ROUNDS):
        elapsed, result = _install(pushed, work / f"ours{r}")
        count = len(result.artifacts)
        ours_t.append(elapsed)
        theirs_t.append(_skopeo_copy(skopeo, pushed.full, work / f"skopeo{r}"))
        cli_t.append(_cli_install(config, pushed.refs, work / f"cli{r}", env))
    a, b, c = (statistics.median(x) for x in (ours_t, theirs_t, cli_t))
    print(f"install {count} artifacts (~1 MB each, with dependencies), median of {ROUNDS}:")
    print(f"  falcoctl-py install_artifacts: {a * 1000:8.1f} ms")
    print(f"  falcoctl-py CLI (process):     {c * 1000:8.1f} ms")
    print(f"  skopeo copy x{len(pushed.full)} (dir:):       {b * 1000:8.1f} ms")
    print(f"  ratio core/skopeo: {a / b:.2f}x   ratio CLI/skopeo: {c / b:.2f}x   (target <= 1.2x)")


def _repeated_install(work: Path, pushed: _Pushed) -> None:
    """The install again into the first round's destination: what it downloads and asks."""
    _, again = _install(pushed, work / "ours0")
    roots = len(pushed.refs)
    kept = sum(a.status == "satisfied" for a in again.artifacts)
    print(
        f"repeated install, nothing changed: blob downloads {again.blob_downloads}, "
        f"manifest requests {again.manifest_requests} for {roots} requested artifacts "
        f"({again.manifest_requests / roots:.2f} per artifact; {kept} dependencies kept "
        f"from the state with no request), requests in total {again.requests}"
    )


def main() -> None:
    from tests.realparts import start_registry

    skopeo = shutil.which("skopeo")
    if shutil.which("docker-registry") is None or skopeo is None:
        print("skipped: needs docker-registry and skopeo (make install-test)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-artifact-"))
    reg = start_registry(work / "registry")
    try:
        pushed = _push_all(reg, work)
        _install_vs_skopeo(work, pushed, skopeo)
        _repeated_install(work, pushed)
        checks_vs_baseline(work, pushed.entries, pushed.refs)
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
            out = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True,
                                 check=False, env=env, cwd=str(work), text=True)
            if out.returncode != 0:
                why = (out.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"checks vs baseline: skipped (the {label} install failed: {why})")
                return
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
