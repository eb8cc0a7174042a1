"""Hostile layers against a real registry: staging look-alikes, huge headers, bombs, cut gzip,
and a kill at every rename of a real install process."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from falcoctl_py.artifact.install import InstallDirs, install_artifacts
from falcoctl_py.artifact.transaction import Transaction
from falcoctl_py.errors import InstallError, IntegrityError
from falcoctl_py.oci.media import OCI_MANIFEST, ArtifactType, Descriptor, build_manifest
from tests.falcoctl_py.artifact.archive_parts import (
    huge_header_layer,
    many_files_layer,
    without_trailer,
)
from tests.falcoctl_py.artifact.install_parts import PLATFORM, Env
from tests.falcoctl_py.artifact_helpers import member, tar_gz, visible
from tests.realparts import need_binary, need_root

RSS_BOUND_MB = 100  # the whole install process (measured: ~29 MiB); before: 4.1 GB


def push_layer(env: Env, name: str, version: str, layer: bytes, kind: str = "asset") -> None:
    """Push ``layer`` as is (no local parsing: it may be hostile) with a minimal config."""
    artifact = ArtifactType(kind)
    repo = f"{env.registry.host}/{kind}s/{name}"
    config = json.dumps({"name": name, "version": version}).encode()
    cfg = Descriptor(artifact.config_media_type, env.client.push_blob(repo, config), len(config))
    lay = Descriptor(artifact.layer_media_type, env.client.push_blob(repo, layer), len(layer))
    env.client.push_manifest(repo, version, build_manifest(cfg, lay, {}), OCI_MANIFEST)
    env.entries[name] = SimpleNamespace(
        name=name, registry=env.registry.host, repository=f"{kind}s/{name}"
    )


@pytest.mark.parametrize(
    "planted",
    [".falcoctl-py-stage-1-x/COMMIT", ".falcoctl-py/0/current/x", "sub/.falcoctl-py-tmp-1"],
)
def test_archive_shaped_like_the_installers_work_is_refused(env: Env, planted: str) -> None:
    dest = env.tmp / "etc" / "falco"
    env.dirs = InstallDirs(dest, env.tmp / "plugins", env.tmp / "etc" / "falco")
    victim = env.tmp / "victim.txt"
    victim.write_text("keep me")
    env.push("bundle", "1.0.0", [env.file("v1.tar.gz", tar_gz([member("a.yaml", b"v1\n")]))])
    env.install("bundle:^1")
    journal = json.dumps(
        {"files": ["../../cron.d/evil"], "remove": [[str(victim), "0" * 64]]}
    ).encode()
    hostile = tar_gz(
        [
            member("a.yaml", b"v2\n"),
            member(planted, journal),
            member(".falcoctl-py-stage-1-x/files/../../cron.d/evil", b"* * * * * root sh\n"),
        ]
    )
    env.push("bundle", "1.1.0", [env.file("v2.tar.gz", hostile)])
    with pytest.raises(IntegrityError, match=r"reserved name|unsafe path"):
        env.install("bundle:^1")
    env.install("bundle:1.0.0")  # the next run recovers whatever is there first
    assert not (env.tmp / "cron.d").exists() and not (env.tmp / "etc" / "cron.d").exists()
    assert victim.read_text() == "keep me"
    assert (dest / "a.yaml").read_bytes() == b"v1\n" and visible(dest) == ["a.yaml"]


CHILD = """
import atexit, re, sys
from pathlib import Path as _P
def _peak():  # this process's own high-water mark (ru_maxrss would count the pre-exec fork)
    print("peak-kib", re.search(r"VmHWM:\\s+(\\d+)", _P("/proc/self/status").read_text())[1])
atexit.register(_peak)
from pathlib import Path
from types import SimpleNamespace
from falcoctl_py.artifact.install import InstallDirs, install_artifacts
from falcoctl_py.errors import FalcoctlPyError
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import Platform
host, tmp, name, version = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
entries = {name: SimpleNamespace(name=name, registry=host, repository="assets/" + name)}
with RegistryClient(plain_http=True) as client:
    try:
        install_artifacts(refs=[f"{name}:{version}"], client=client, lookup=entries.get,
                          dirs=InstallDirs(tmp / "r", tmp / "p", tmp / "assets"),
                          state_dir=tmp / "state", platform=Platform("linux", "amd64"))
    except FalcoctlPyError as err:
        print(err.one_line())
        sys.exit(2)
print("done")
"""


def run_child(env: Env, run: Path, name: str, version: str, *wrap: str) -> tuple[int, str, int]:
    """Install in a real child process: (exit status, output, its peak RSS in MiB, VmHWM)."""
    proc = subprocess.Popen(
        [*wrap, sys.executable, "-c", CHILD, env.registry.host, str(run), name, version],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.wait()
    proc.stdout.close()
    peak = [int(line.split()[1]) for line in out.splitlines() if line.startswith("peak-kib ")]
    return proc.returncode, out, peak[-1] // 1024 if peak else 0


@pytest.fixture(scope="module")
def huge_layers(tmp_path_factory: pytest.TempPathFactory) -> dict[bytes, bytes]:
    folder = tmp_path_factory.mktemp("huge")
    return {
        kind: huge_header_layer(folder / f"{kind.decode()}.tar.gz", kind).read_bytes()
        for kind in (b"x", b"L")
    }


@pytest.mark.parametrize("kind", [b"x", b"L"], ids=["pax", "gnu-long-name"])
def test_2mb_layer_with_2gib_header_is_refused_in_bounded_memory(
    env: Env, huge_layers: dict[bytes, bytes], kind: bytes
) -> None:
    layer = huge_layers[kind]
    assert len(layer) < 3 * 1024 * 1024
    push_layer(env, "huge", "1.0.0", layer)
    code, out, rss_mb = run_child(env, env.tmp / "run", "huge", "1.0.0")
    assert code == 2, out
    assert "header of 2147483648 bytes" in out
    assert 0 < rss_mb < RSS_BOUND_MB, f"peak RSS {rss_mb} MiB"
    print(f"peak RSS of the refused install: {rss_mb} MiB")
    assert visible(env.tmp / "run" / "assets") == []


def test_many_small_compressed_files_stop_as_extraction_goes(env: Env, tmp_path: Path) -> None:
    """1,500 x 1 MiB of zeros (1.5 MB compressed) into a 256 MiB filesystem: refused by the
    ratio bound long before the filesystem fills (which a check after extraction would hit)."""
    need_root()
    need_binary("mount")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(small)], check=True)
    try:
        env.dirs = InstallDirs(small / "r", small / "p", small / "assets")
        layer = many_files_layer(tmp_path / "many.tar.gz", 1500, 1 << 20).read_bytes()
        push_layer(env, "many", "1.0.0", layer)
        with pytest.raises(IntegrityError, match="decompression bomb"):
            env.install("many:1.0.0")
        assert visible(small / "assets") == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_too_many_entries_refused(env: Env, tmp_path: Path) -> None:
    layer = many_files_layer(tmp_path / "n.tar.gz", 10_001, 0).read_bytes()
    push_layer(env, "entries", "1.0.0", layer)
    with pytest.raises(IntegrityError, match="more than 10000 entries"):
        env.install("entries:1.0.0")
    assert env.dest_files() == []


def test_gzip_without_trailer_is_refused(env: Env) -> None:
    env.push("app", "1.0.0", [env.file("a.tar.gz", tar_gz([member("a.yaml", b"old\n")]))], "asset")
    env.install("app:^1")
    whole = tar_gz([member("a.yaml", b"new\n")])
    assert gzip.decompress(whole)  # a valid stream until its trailer is cut
    push_layer(env, "app", "1.1.0", without_trailer(whole))
    with pytest.raises(IntegrityError, match=r"not a valid tar\.gz"):
        env.install("app:^1")
    assert (env.dirs.assets / "a.yaml").read_bytes() == b"old\n"


def test_kill_at_every_rename_never_shows_a_mixed_set(env: Env) -> None:
    """SIGKILL a real install at each rename/symlink syscall (strace injects it): right after
    the journal and everywhere after, a reader sees all-old or all-new files, never a mix."""
    need_binary("strace")
    old = tar_gz([member("a.bin", b"old a"), member("b.bin", b"old b"), member("c.bin", b"c")])
    new = tar_gz([member("a.bin", b"new a"), member("b.bin", b"new b"), member("d.bin", b"d")])
    env.push("bundle", "1.0.0", [env.file("o.tar.gz", old)], "asset")
    env.push("bundle", "1.1.0", [env.file("n.tar.gz", new)], "asset")
    sets = {
        "old": {"a.bin": b"old a", "b.bin": b"old b", "c.bin": b"c"},
        "new": {"a.bin": b"new a", "b.bin": b"new b", "d.bin": b"d"},
    }
    repo = f"{env.registry.host}/assets/bundle"
    manifests = {v: env.client.get_manifest(repo, v).data for v in ("1.0.0", "1.1.0")}

    def tag_current(version: str) -> None:  # one reference, "bundle:current", moves
        env.client.push_manifest(repo, "current", manifests[version], OCI_MANIFEST)

    seen = set()
    for syscall in ("rename", "symlink"):
        for n in range(1, 40):
            run = env.tmp / f"{syscall}{n}"
            dirs = InstallDirs(run / "r", run / "p", run / "assets")
            tag_current("1.0.0")
            install_artifacts(
                refs=["bundle:current"],
                client=env.client,
                lookup=env.entries,
                dirs=dirs,
                state_dir=run / "state",
                platform=PLATFORM,
            )
            tag_current("1.1.0")
            strace = ["strace", "-f", "-qq", "-o", "/dev/null"]
            inject = ["-e", f"inject={syscall}:signal=KILL:when={n}"]
            code, out, _ = run_child(env, run, "bundle", "current", *strace, *inject)
            view = {p: (dirs.assets / p).read_bytes() for p in visible(dirs.assets)}
            outcome = next((k for k, v in sets.items() if v == view), None)
            assert outcome is not None, f"a mixed set after a kill at {syscall} #{n}: {view}"
            seen.add(outcome)
            Transaction(run / "state").recover({dirs.assets})
            view = {p: (dirs.assets / p).read_bytes() for p in visible(dirs.assets)}
            assert view in sets.values()
            if code == 0:  # the install ran to its end before the n-th call: all points done
                assert "done" in out and view == sets["new"]
                break
        else:
            raise AssertionError(f"the install never finished under {syscall} injection")
    assert seen == {"old", "new"}


def test_full_disk_while_switching_keeps_old_set(env: Env, tmp_path: Path) -> None:
    need_root()
    need_binary("mount")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        env.dirs = InstallDirs(small / "r", small / "p", small / "assets")
        env.push("d", "1.0.0", [env.file("d.tar.gz", tar_gz([member("d.bin", b"1")]))], "asset")
        env.install("d:^1")
        big = tar_gz([member("d.bin", os.urandom(200_000)), member("e.bin", os.urandom(80_000))])
        env.push("d", "1.1.0", [env.file("d2.tar.gz", big)], "asset")
        with pytest.raises(InstallError, match="no space left"):
            env.install("d:^1")
        assert visible(small / "assets") == ["d.bin"]
        assert (small / "assets" / "d.bin").read_bytes() == b"1"
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_reserved_entry_message_is_one_line(tmp_path: Path) -> None:
    from falcoctl_py.artifact.archive import extract_tar_gz

    path = tmp_path / "x.tar.gz"
    path.write_bytes(tar_gz([member(".falcoctl/artifact-state/x.json", b"{}")]))
    with pytest.raises(IntegrityError) as err:
        extract_tar_gz(path, tmp_path / "out")
    assert "\n" not in err.value.one_line() and "reserved name .falcoctl*" in str(err.value)
    assert tarfile.is_tarfile(path)
