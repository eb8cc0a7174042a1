"""Install from a real registry: identical files, state, no re-downloads, refusals, atomicity."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from falcoctl_py.artifact.install import InstallDirs, install_artifacts
from falcoctl_py.artifact.state import list_states
from falcoctl_py.artifact.transaction import Transaction
from falcoctl_py.errors import (
    InstallError,
    IntegrityError,
    NotFoundError,
    UsageError,
    VerificationError,
)
from falcoctl_py.oci.media import OCI_MANIFEST, Descriptor, Platform, build_manifest
from falcoctl_py.push import push_artifact
from tests.falcoctl_py.artifact.install_parts import PLATFORM, Env
from tests.falcoctl_py.artifact_helpers import blob_path, member, tar_gz, visible
from tests.realparts import need_binary, need_root

RULES = Path(__file__).resolve().parents[4] / "shared" / "falco-rules"


def test_upstream_rules_installed_byte_identical_with_dependency(env: Env) -> None:
    if not RULES.is_dir():
        pytest.skip(f"the upstream rules ({RULES}) are not on this machine")
    env.push("container", "0.4.0", [env.file("libcontainer.so", b"\x7fELF v0.4.0")], "plugin")
    env.push("container", "0.4.3", [env.file("libcontainer.so", b"\x7fELF v0.4.3")], "plugin")
    env.push("container", "1.0.0", [env.file("libcontainer.so", b"\x7fELF v1")], "plugin")
    for src, name in [
        ("falco_rules.yaml", "falco-rules"),
        ("falco-incubating_rules.yaml", "falco-incubating-rules"),
        ("falco-sandbox_rules.yaml", "falco-sandbox-rules"),
    ]:
        env.push(name, "5.0.0", [RULES / src], tags=["latest"])
    result = env.install("falco-rules:^5", "falco-incubating-rules:5", "falco-sandbox-rules")
    # deps first (latest compatible 0.4.x, not the minimum and not 1.0.0), then by name
    assert [(a.name, a.version, a.status) for a in result.artifacts] == [
        ("container", "0.4.3", "installed"),
        ("falco-incubating-rules", "5.0.0", "installed"),
        ("falco-rules", "5.0.0", "installed"),
        ("falco-sandbox-rules", "5.0.0", "installed"),
    ]
    for src in ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"):
        assert (env.dirs.rulesfiles / src).read_bytes() == (RULES / src).read_bytes()
    assert (env.dirs.plugins / "libcontainer.so").read_bytes() == b"\x7fELF v0.4.3"
    assert not list(env.dirs.rulesfiles.glob(".falcoctl-py-stage-*"))

    again = env.install("falco-rules:^5", "falco-incubating-rules:5", "falco-sandbox-rules")
    assert again.blob_downloads == 0
    assert again.manifest_requests <= 3  # at most one per artifact (the dependency: none)
    assert [(a.name, a.status) for a in again.artifacts] == [
        ("container", "satisfied"),
        ("falco-incubating-rules", "up-to-date"),
        ("falco-rules", "up-to-date"),
        ("falco-sandbox-rules", "up-to-date"),
    ]
    assert again.artifacts[0].requested_by == [
        "falco-incubating-rules:5.0.0",
        "falco-rules:5.0.0",
        "falco-sandbox-rules:5.0.0",
    ]
    assert len(list_states(env.tmp / "state")) == 4


def test_new_version_updates_and_records_state(env: Env) -> None:
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"- list: a\n  items: []\n")])
    env.install("app-rules:^1")
    env.push("app-rules", "1.1.0", [env.file("app_rules.yaml", b"- list: b\n  items: []\n")])
    result = env.install("app-rules:^1")
    assert [(a.version, a.status) for a in result.artifacts] == [("1.1.0", "updated")]
    assert (env.dirs.rulesfiles / "app_rules.yaml").read_bytes() == b"- list: b\n  items: []\n"
    state = list_states(env.tmp / "state")[0]
    assert state.ref.endswith("/rulesfiles/app-rules:^1") and state.version == "1.1.0"
    assert state.digest == result.artifacts[0].digest


def test_locally_modified_file_is_reinstalled(env: Env) -> None:
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"- list: a\n")])
    env.install("app-rules:1.0.0")
    (env.dirs.rulesfiles / "app_rules.yaml").write_text("edited")
    result = env.install("app-rules:1.0.0")
    assert result.artifacts[0].status == "updated"
    assert (env.dirs.rulesfiles / "app_rules.yaml").read_bytes() == b"- list: a\n"


def test_tampered_blob_writes_nothing(env: Env) -> None:
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"- list: a\n")])
    manifest = env.client.get_manifest(f"{env.registry.host}/rulesfiles/app-rules", "1.0.0")
    import json

    layer = json.loads(manifest.data)["layers"][0]["digest"]
    data = blob_path(env.registry, layer)
    data.write_bytes(data.read_bytes()[:-4] + b"evil")
    with pytest.raises(IntegrityError, match="does not match its digest"):
        env.install("app-rules:1.0.0")
    assert env.dest_files() == []
    assert list_states(env.tmp / "state") == []


@pytest.mark.parametrize(
    "entry",
    [
        member("/etc/cron.d/evil"),
        member("../../evil.yaml"),
        member("l", kind=tarfile.SYMTYPE, linkname="/etc/shadow"),
        member("dev", kind=tarfile.CHRTYPE),
    ],
)
def test_unsafe_archive_leaves_old_files(env: Env, entry: Any) -> None:
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"old\n")])
    env.install("app-rules:^1")
    bad = env.file("bad.tar.gz", tar_gz([member("app_rules.yaml", b"new\n"), entry]))
    env.push("app-rules", "1.1.0", [bad])
    with pytest.raises(IntegrityError):
        env.install("app-rules:^1")
    assert (env.dirs.rulesfiles / "app_rules.yaml").read_bytes() == b"old\n"
    assert env.dest_files() == ["rules/app_rules.yaml"]
    assert not (env.tmp.parent / "evil.yaml").exists()


def test_size_bomb_refused(env: Env) -> None:
    env.push("bomb", "1.0.0", [env.file("bomb.tar.gz", tar_gz([member("z", b"\0" * (2 << 20))]))])
    with pytest.raises(IntegrityError, match="decompressed size"):
        env.install("bomb:1.0.0", max_extracted=1 << 20)
    assert env.dest_files() == []


def test_unknown_tag_and_name(env: Env) -> None:
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"x\n")])
    with pytest.raises(NotFoundError, match="not found"):
        env.install("app-rules:9.9.9")
    with pytest.raises(NotFoundError, match="among the configured indexes"):
        env.install("nope:1")
    assert env.dest_files() == []


def test_unexpected_media_types_refused(env: Env) -> None:
    repo = f"{env.registry.host}/images/busybox"
    cfg = Descriptor(
        "application/vnd.oci.image.config.v1+json", env.client.push_blob(repo, b"{}"), 2
    )
    layer = Descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip", env.client.push_blob(repo, b"layer"), 5
    )
    env.client.push_manifest(repo, "1.0.0", build_manifest(cfg, layer, {}), OCI_MANIFEST)
    with pytest.raises(IntegrityError, match="unexpected layer media type"):
        env.install(f"{repo}:1.0.0")


def test_allowed_types(env: Env) -> None:
    env.push("json", "0.7.0", [env.file("libjson.so", b"so")], "plugin")
    with pytest.raises(UsageError, match="type plugin is not allowed"):
        env.install("json:0.7.0", allowed_types=["rulesfile"])
    assert env.dest_files() == []


def test_plugin_platform_selected(env: Env) -> None:
    env.entries["multi"] = SimpleNamespace(
        name="multi", registry=env.registry.host, repository="plugins/multi"
    )
    push_artifact(
        client=env.client,
        ref=env.registry.ref("plugins/multi", "1.0.0"),
        files=[env.file("amd/libm.so", b"amd64"), env.file("arm/libm.so", b"arm64")],
        artifact_type="plugin",
        version="1.0.0",
        platforms=["linux/amd64", "linux/arm64"],
    )
    env.install("multi:1.0.0", platform=Platform("linux", "arm64"))
    assert (env.dirs.plugins / "libm.so").read_bytes() == b"arm64"
    with pytest.raises(NotFoundError, match="no manifest for platform darwin/arm64"):
        env.install("multi:1.0.0", platform=Platform("darwin", "arm64"))


def test_verify_hook_runs_before_any_write(env: Env) -> None:
    digest = env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"x\n")])
    calls: list[tuple[str, str, str, Any]] = []

    def verify(host: str, repo: str, root: str, entry: Any) -> None:
        calls.append((host, repo, root, entry))
        assert env.dest_files() == []
        raise VerificationError("no signature")

    with pytest.raises(VerificationError):
        env.install("app-rules:1.0.0", verify=verify)
    assert calls == [(env.registry.host, "rulesfiles/app-rules", digest, env.entries["app-rules"])]
    assert env.dest_files() == []


def test_interrupted_commit_is_rolled_forward(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    old = env.file("old.tar.gz", tar_gz([member("a.txt", b"old a"), member("b.txt", b"old b")]))
    new = env.file("new.tar.gz", tar_gz([member("a.txt", b"new a"), member("b.txt", b"new b")]))
    env.push("bundle", "1.0.0", [old], "asset")
    env.install("bundle:^1")
    env.push("bundle", "1.1.0", [new], "asset")
    real_replace = os.replace
    moved: list[str] = []

    def dying_replace(src: Any, dst: Any) -> None:
        if moved:
            raise KeyboardInterrupt  # the process is killed between the two renames
        moved.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)  # as layout_mod sees it
    with pytest.raises(KeyboardInterrupt):
        env.install("bundle:^1")
    monkeypatch.setattr(os, "replace", real_replace)
    Transaction(env.tmp / "state").recover({env.dirs.assets})  # the next install's first step
    assert (env.dirs.assets / "a.txt").read_bytes() == b"new a"
    assert (env.dirs.assets / "b.txt").read_bytes() == b"new b"
    assert env.dest_files() == ["assets/a.txt", "assets/b.txt"]


def test_interrupted_staging_is_discarded(env: Env) -> None:
    env.dirs.rulesfiles.mkdir(parents=True)
    stage = env.dirs.rulesfiles / ".falcoctl-py-stage-dead"
    (stage / "files").mkdir(parents=True)
    (stage / "files" / "half.yaml").write_text("partial")
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"x\n")])
    env.install("app-rules:1.0.0")
    assert env.dest_files() == ["rules/app_rules.yaml"]


def test_oras_py_pushed_artifact_installs(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import oras.client

    work = tmp_path / "oras"
    work.mkdir()
    (work / "rules.tar.gz").write_bytes(tar_gz([member("oras_rules.yaml", b"- list: oras\n")]))
    (work / "config.json").write_text(json.dumps({"name": "oras-rules", "version": "2.0.0"}))
    monkeypatch.chdir(work)
    client = oras.client.OrasClient(hostname=env.registry.host, insecure=True)
    client.push(
        target=env.registry.ref("rulesfiles/oras-rules", "2.0.0"),
        files=["rules.tar.gz:application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"],
        manifest_config="config.json:application/vnd.cncf.falco.rulesfile.config.v1+json",
    )
    result = env.install(env.registry.ref("rulesfiles/oras-rules", "2.0.0"))
    assert [(a.name, a.version) for a in result.artifacts] == [("oras-rules", "2.0.0")]
    assert (env.dirs.rulesfiles / "oras_rules.yaml").read_bytes() == b"- list: oras\n"


def test_full_disk_changes_nothing(env: Env, tmp_path: Path) -> None:
    need_root()
    need_binary("mount")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(small)], check=True)
    try:
        env.dirs = InstallDirs(small / "rules", small / "plugins", small / "assets")
        env.push("data", "1.0.0", [env.file("data.bin", b"old\n")], "asset")
        env.install("data:^1")
        env.push("data", "1.1.0", [env.file("data.bin", os.urandom(900_000))], "asset")
        with pytest.raises(InstallError, match="no space left"):
            env.install("data:^1")
        assert (small / "assets" / "data.bin").read_bytes() == b"old\n"
        assert visible(small / "assets") == ["data.bin"]
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_files_dropped_by_new_version_are_removed(env: Env) -> None:
    v1 = env.file(
        "v1.tar.gz",
        tar_gz([member("a.txt", b"a1"), member("b.txt", b"b1"), member("c.txt", b"c1")]),
    )
    v2 = env.file("v2.tar.gz", tar_gz([member("a.txt", b"a2")]))
    env.push("bundle", "1.0.0", [v1], "asset")
    env.install("bundle:^1")
    (env.dirs.assets / "c.txt").write_bytes(b"edited by the user")
    env.push("bundle", "1.1.0", [v2], "asset")
    env.install("bundle:^1")
    # b.txt went away with the new version; the user's edit of c.txt is kept
    assert env.dest_files() == ["assets/a.txt", "assets/c.txt"]
    assert (env.dirs.assets / "a.txt").read_bytes() == b"a2"


def test_unusable_state_dir(env: Env) -> None:
    blocker = env.tmp / "file"
    blocker.write_text("not a directory")
    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"x\n")])
    with pytest.raises(InstallError, match="cannot open the lock file"):
        install_artifacts(
            refs=["app-rules:1.0.0"],
            client=env.client,
            lookup=env.entries,
            dirs=env.dirs,
            state_dir=blocker / "state",
            platform=PLATFORM,
        )
    assert env.dest_files() == []


CHILD = """
import sys
from pathlib import Path
from types import SimpleNamespace
from falcoctl_py.artifact.install import InstallDirs, install_artifacts
from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.oci.media import Platform
host, tmp = sys.argv[1], Path(sys.argv[2])
entries = {"bundle": SimpleNamespace(name="bundle", registry=host, repository="assets/bundle")}
with RegistryClient(plain_http=True) as client:
    print("ready", flush=True)
    sys.stdin.readline()
    install_artifacts(refs=["bundle:1.1.0"], client=client, lookup=entries.get,
                      dirs=InstallDirs(tmp / "r", tmp / "p", tmp / "assets"),
                      state_dir=tmp / "state", platform=Platform("linux", "amd64"))
print("done", flush=True)
"""


def test_sigkill_at_any_moment_leaves_old_or_new(env: Env) -> None:
    import signal
    import sys
    import time

    big_old, big_new = os.urandom(1 << 20), os.urandom(1 << 20)
    old = env.file("o.tar.gz", tar_gz([member("a.bin", big_old), member("b.bin", big_old)]))
    new = env.file("n.tar.gz", tar_gz([member("a.bin", big_new), member("b.bin", big_new)]))
    env.push("bundle", "1.0.0", [old], "asset")
    env.push("bundle", "1.1.0", [new], "asset")
    outcomes = set()
    for i, delay in enumerate([0.0, 0.01, 0.02, 0.04, 0.07, 0.1, 0.2]):
        run = env.tmp / f"run{i}"
        dirs = InstallDirs(run / "r", run / "p", run / "assets")
        install_artifacts(
            refs=["bundle:1.0.0"],
            client=env.client,
            lookup=env.entries,
            dirs=dirs,
            state_dir=run / "state",
            platform=PLATFORM,
        )
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, env.registry.host, str(run)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdin.close()
        child.stdout.close()
        Transaction(run / "state").recover({dirs.assets})  # the next install's first step
        contents = {(dirs.assets / n).read_bytes() for n in ("a.bin", "b.bin")}
        assert contents in ({big_old}, {big_new}), f"a mix after a kill at {delay}s"
        assert visible(dirs.assets) == ["a.bin", "b.bin"]
        outcomes.add("new" if contents == {big_new} else "old")
    assert "old" in outcomes  # the early kills did interrupt something


def test_an_update_tells_a_watcher_of_the_rules_folder(env: Env) -> None:
    """The switch happens in the installer's own area; a watcher of the rules folder (the
    detector's, Falco's) is still told about each file whose content changed."""
    from detector.runtime.watch import DIR_MASK, IN_MOVED_TO, _Inotify

    env.push("app-rules", "1.0.0", [env.file("app_rules.yaml", b"- list: a\n  items: [x]\n")])
    env.install("app-rules:1.0.0")
    inotify = _Inotify()
    try:
        inotify.add(env.dirs.rulesfiles, DIR_MASK)
        env.push("app-rules", "1.1.0", [env.file("app_rules.yaml", b"- list: a\n  items: [y]\n")])
        env.install("app-rules:1.1.0")
        events = inotify.read()
    finally:
        inotify.close()
    assert (env.dirs.rulesfiles / "app_rules.yaml").read_bytes() == b"- list: a\n  items: [y]\n"
    assert any(name == "app_rules.yaml" and mask & IN_MOVED_TO for _, mask, name in events), events
