"""Follow against a real registry and a real HTTP /versions server: updates, refusals, faults."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

from falcoctl_py.artifact.resolve import parse_artifact_ref
from falcoctl_py.artifact.state import list_states
from falcoctl_py.errors import VerificationError
from falcoctl_py.follow.follower import is_floating
from falcoctl_py.follow.rollback import rollback
from falcoctl_py.oci.client import RegistryClient
from tests.eventually import eventually
from tests.falcoctl_py.artifact_helpers import Fault, FaultProxy, visible
from tests.falcoctl_py.follow_helpers import PLATFORM, RULE_V1, RULE_V2, FollowEnv, rules
from tests.realparts import Registry


def test_idle_tick_is_one_manifest_request_and_no_blob(env: FollowEnv) -> None:
    env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
    follower = env.follower("app-rules")
    first = follower.tick()[0]
    assert first.status == "updated"
    assert rules(env) == RULE_V1
    stats = env.client.stats
    blobs, manifests = stats.blob_gets, stats.manifest_requests
    for _ in range(3):
        idle = follower.tick()[0]
        assert (idle.status, idle.requests) == ("unchanged", 1)
    assert stats.blob_gets == blobs
    assert stats.manifest_requests == manifests + 3


def test_a_running_follower_installs_each_push(env: FollowEnv) -> None:
    """The run loop checks again on its own (how soon is the schedule's business, tested with an
    injected clock below; the figures are in bench/)."""
    env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
    follower = env.follower("app-rules:latest", every="1s")
    stop = threading.Event()
    runner = threading.Thread(target=follower.run, args=(stop,))
    runner.start()
    try:
        eventually(lambda: (env.dirs.rulesfiles / "app_rules.yaml").exists(), timeout=30)
        env.push("app-rules", "1.1.0", {"app_rules.yaml": RULE_V2})
        eventually(lambda: rules(env) == RULE_V2, timeout=30)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert [(u[0], u[2].to_version) for u in env.updates] == [
        ("app-rules", "1.0.0"),
        ("app-rules", "1.1.0"),
    ]


def test_registry_restart_and_faults_do_not_stop_following(
    env: FollowEnv, registry: Registry
) -> None:
    env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
    follower = env.follower("app-rules", every="1s")
    stop = threading.Event()
    runner = threading.Thread(target=follower.run, args=(stop,))
    runner.start()
    try:
        eventually(lambda: (env.dirs.rulesfiles / "app_rules.yaml").exists(), timeout=30)
        registry.stop()
        ref = follower.followers[0]
        eventually(lambda: ref.failures >= 2, timeout=30)  # failed checks, backing off
        assert runner.is_alive()
        registry.start()
        env.push("app-rules", "1.1.0", {"app_rules.yaml": RULE_V2})
        eventually(lambda: rules(env) == RULE_V2, timeout=30)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_rate_limit_honours_retry_after_and_cut_download_recovers(
    registry: Registry, tmp_path: Path
) -> None:
    proxy = FaultProxy(registry.host).start()
    env = FollowEnv(registry, tmp_path, host=proxy.host)
    env.client.close()
    env.client = RegistryClient(plain_http=True, max_retries=0)  # faults reach the follower
    try:
        env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
        follower = env.follower("app-rules")
        proxy.faults.append(
            Fault(lambda m, p: m == "HEAD" and "/manifests/" in p, 429, retry_after="3", times=1)
        )
        result = follower.tick()[0]
        assert (result.status, result.transient, result.retry_after) == ("error", True, 3.0)
        delay = follower.next_delay(follower.followers[0], result)
        assert delay >= 3.0  # Retry-After wins over the short exponential backoff (<= 1s)
        # the layer download is cut half-way: a transient failure, the next check completes
        proxy.faults.append(Fault(lambda m, p: m == "GET" and "/blobs/" in p, cut_after=5, times=1))
        cut = follower.tick()[0]
        assert (cut.status, cut.transient) == ("error", True)
        assert not (env.dirs.rulesfiles / "app_rules.yaml").exists()
        assert follower.tick()[0].status == "updated"
        assert rules(env) == RULE_V1
        assert not list(env.dirs.rulesfiles.glob(".falcoctl-py-stage-*"))
        ok = follower.tick()[0]
        assert ok.status == "unchanged"
        assert follower.next_delay(follower.followers[0], ok) == 1.0  # back on the schedule
    finally:
        env.close()
        proxy.stop()


def test_exponential_backoff_grows_with_jitter(env: FollowEnv) -> None:
    follower = env.follower("app-rules", every="60s")
    ref = follower.followers[0]
    down = follower.tick()[0]  # nothing pushed: not found is not transient
    assert not down.transient
    from falcoctl_py.follow.follower import TickResult

    transient = TickResult("x", "error", transient=True)
    delays = [follower.next_delay(ref, transient) for _ in range(6)]
    assert all(0.5 * 2**i <= d <= 1.0 * 2**i for i, d in enumerate(delays[:5]))
    assert delays[5] <= 60.0


def test_dropped_files_removed_rollback_restores_and_holds(env: FollowEnv) -> None:
    env.push("app-rules", "1.0.0", {"a_rules.yaml": RULE_V1, "b_rules.yaml": RULE_V1})
    follower = env.follower("app-rules")
    follower.tick()
    assert visible(env.dirs.rulesfiles) == ["a_rules.yaml", "b_rules.yaml"]
    env.push("app-rules", "1.1.0", {"a_rules.yaml": RULE_V2})
    updated = follower.tick()[0]
    assert visible(env.dirs.rulesfiles) == ["a_rules.yaml"]
    assert updated.summary is not None and updated.summary.files_removed == ["b_rules.yaml"]

    back = rollback(state_dir=env.state_dir, name="app-rules")
    assert (back.from_version, back.to_version) == ("1.1.0", "1.0.0")
    assert visible(env.dirs.rulesfiles) == ["a_rules.yaml", "b_rules.yaml"]
    assert rules(env, "a_rules.yaml") == RULE_V1
    (state,) = list_states(env.state_dir)
    assert (state.version, state.digest) == ("1.0.0", back.to_digest)
    # the version rolled back from is not reinstalled; a newer one is
    assert follower.tick()[0].status == "held"
    assert rules(env, "a_rules.yaml") == RULE_V1
    env.push("app-rules", "1.2.0", {"a_rules.yaml": b"- rule: third\n"})
    assert follower.tick()[0].status == "updated"
    assert rules(env, "a_rules.yaml") == b"- rule: third\n"


def test_follow_keeps_a_dropped_file_the_user_edited_as_install_does(env: FollowEnv) -> None:
    """One policy for dropped files: follow used to delete the edit that install keeps."""
    from falcoctl_py.artifact.install import install_artifacts

    env.push("app-rules", "1.0.0", {"a_rules.yaml": RULE_V1, "b_rules.yaml": RULE_V1})
    follower = env.follower("app-rules")
    follower.tick()
    (env.dirs.rulesfiles / "b_rules.yaml").write_bytes(b"- rule: mine\n")
    env.push("app-rules", "1.1.0", {"a_rules.yaml": RULE_V2})
    assert follower.tick()[0].status == "updated"
    assert visible(env.dirs.rulesfiles) == ["a_rules.yaml", "b_rules.yaml"]
    assert rules(env, "b_rules.yaml") == b"- rule: mine\n"
    # the same edit under install, for another reference of the same files
    env.push("other-rules", "1.0.0", {"c_rules.yaml": RULE_V1, "d_rules.yaml": RULE_V1})

    def install() -> None:
        install_artifacts(
            refs=["other-rules:latest"],
            client=env.client,
            lookup=env.entries,
            dirs=env.dirs,
            state_dir=env.state_dir,
            platform=PLATFORM,
        )

    install()
    (env.dirs.rulesfiles / "d_rules.yaml").write_bytes(b"- rule: mine too\n")
    env.push("other-rules", "1.1.0", {"c_rules.yaml": RULE_V2})
    install()
    assert rules(env, "d_rules.yaml") == b"- rule: mine too\n"


def test_floating_reference_never_downgrades_pinned_tag_follows(env: FollowEnv) -> None:
    env.push("app-rules", "2.0.0", {"app_rules.yaml": RULE_V2})
    env.push("pinned-rules", "1.0.0", {"app_rules.yaml": RULE_V1}, tags=[])
    floating = env.follower("app-rules:latest")
    pinned = env.follower("pinned-rules:1.0.0")
    pinned.dirs = type(pinned.dirs)(env.tmp / "pinned", env.tmp / "p", env.tmp / "a")
    assert floating.tick()[0].status == "updated"
    assert pinned.tick()[0].status == "updated"
    env.push(
        "app-rules", "1.5.0", {"app_rules.yaml": RULE_V1}, tags=["latest"]
    )  # latest moves back
    down = floating.tick()[0]
    assert down.status == "skipped" and "never downgraded" in down.message
    assert rules(env) == RULE_V2
    env.push("pinned-rules", "1.0.0", {"app_rules.yaml": b"- rule: rebuilt\n"}, tags=[])
    assert pinned.tick()[0].status == "updated"
    assert (env.tmp / "pinned" / "app_rules.yaml").read_bytes() == b"- rule: rebuilt\n"


def test_floating_classification() -> None:
    lookup = {"r": type("E", (), {"registry": "h:1", "repository": "r"})()}.get
    kinds = {
        t: is_floating(parse_artifact_ref(t, lookup)) for t in ("r", "r:latest", "r:5", "r:^5")
    }
    assert kinds == {"r": True, "r:latest": True, "r:5": True, "r:^5": True}
    assert not is_floating(parse_artifact_ref("r:5.1.0", lookup))
    assert not is_floating(parse_artifact_ref("h:1/r@sha256:" + "a" * 64, lookup))


def test_change_summary_names_rules(env: FollowEnv) -> None:
    v1 = b"- rule: kept\n  desc: a\n- rule: changed\n  desc: a\n- rule: removed\n  desc: a\n"
    v2 = b"- rule: kept\n  desc: a\n- rule: changed\n  desc: b\n- rule: added\n  desc: a\n"
    env.push("app-rules", "1.0.0", {"app_rules.yaml": v1})
    follower = env.follower("app-rules")
    follower.tick()
    env.push("app-rules", "1.1.0", {"app_rules.yaml": v2})
    follower.tick()
    name, files, summary = env.updates[-1]
    assert name == "app-rules" and files == [str(env.dirs.rulesfiles / "app_rules.yaml")]
    assert (summary.rules_added, summary.rules_removed, summary.rules_changed) == (
        ["added"],
        ["removed"],
        ["changed"],
    )
    assert "rules added: 'added'" in summary.text()


def test_validator_refusal_keeps_old_files_and_signature_checked_for_full_refs(
    env: FollowEnv,
) -> None:
    env.push("app-rules", "1.0.0", {"app_rules.yaml": RULE_V1})
    calls: list[tuple[str, Any]] = []

    def verify(host: str, repo: str, digest: str, entry: Any) -> None:
        calls.append((repo, entry))
        if digest == refused_digest[0]:
            raise VerificationError("no signature matches the key")

    refused_digest = [""]
    seen: list[list[Path]] = []

    def validate(staged: list[Path]) -> None:
        seen.append(staged)
        if b"bad" in staged[0].read_bytes():
            raise ValueError("rule 'x': unknown field")

    full = f"{env.registry.host}/rulesfiles/app-rules:latest"
    follower = env.follower(full, verify=verify, validate=validate)
    assert follower.tick()[0].status == "updated"
    # a full reference is verified like install does: by the index entry of its repository
    assert calls == [("rulesfiles/app-rules", env.entries["app-rules"])]
    staged = seen[0][0]  # validated where it was staged, in the installer's own area
    assert staged.name == "app_rules.yaml" and ".falcoctl-py" in staged.parts

    env.push("app-rules", "1.1.0", {"app_rules.yaml": b"- rule: bad\n"})
    refused = follower.tick()[0]
    assert refused.status == "skipped" and "unknown field" in refused.message
    assert rules(env) == RULE_V1
    assert follower.tick()[0].requests == 1

    refused_digest[0] = env.push("app-rules", "1.2.0", {"app_rules.yaml": RULE_V2})
    unsigned = follower.tick()[0]
    assert unsigned.status == "skipped" and "signature" in unsigned.message
    assert rules(env) == RULE_V1


def test_install_and_follow_at_once_leave_no_corruption(
    env: FollowEnv, tmp_path: Path, isolated_home: Path
) -> None:
    from falcoctl_py.actions import artifact as artifact_actions
    from tests.falcoctl_py.artifact_helpers import write_config, write_index

    versions = {
        f"1.{i}.0": {"a_rules.yaml": b"- rule: a%d\n" % i, f"v{i}.yaml": b"x" * 4096}
        for i in range(4)
    }
    env.push("app-rules", "1.0.0", versions["1.0.0"])
    index = write_index(
        tmp_path / "index.yaml", env.registry, {"app-rules": ("rulesfile", "rulesfiles/app-rules")}
    )
    config = write_config(tmp_path, index)
    follower = env.follower("app-rules:latest")
    errors: list[BaseException] = []
    done = threading.Event()

    def install_loop() -> None:
        try:
            while not done.is_set():
                artifact_actions.install(
                    config_path=config,
                    refs=["app-rules:latest"],
                    rulesfiles_dir=env.dirs.rulesfiles,
                    state_dir=env.state_dir,
                    no_verify=True,
                    tls=artifact_actions.TlsOptions(plain_http=True),
                )
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    installer = threading.Thread(target=install_loop)
    installer.start()
    try:
        for version in ("1.1.0", "1.2.0", "1.3.0"):
            env.push("app-rules", version, versions[version])
            for _ in range(3):
                assert follower.tick()[0].status in ("updated", "unchanged")
    finally:
        done.set()
        installer.join(30)
    assert not errors
    follower.tick()
    (state,) = list_states(env.state_dir)
    assert state.version == "1.3.0"
    rules = env.dirs.rulesfiles
    on_disk = {name: (rules / name).read_bytes() for name in visible(rules)}
    # exactly one version's files (install does not remove dropped files; follow's switch did)
    assert on_disk["a_rules.yaml"] == b"- rule: a3\n"
    assert on_disk["v3.yaml"] == b"x" * 4096
    assert all(not name.startswith(".") for name in on_disk)  # no staging left behind
    from falcoctl_py.artifact.archive import file_sha256

    assert all(file_sha256(Path(f.path)) == f.sha256 for f in state.files)


def test_schedule_uses_the_injected_clock(env: FollowEnv) -> None:
    """A cron schedule is computed from the follower's clock: no waiting on the wall clock."""
    from falcoctl_py.follow.follower import TickResult
    from falcoctl_py.follow.schedule import Schedule

    now = [dt.datetime(2026, 11, 26, 7, 15, tzinfo=dt.UTC)]
    follower = env.follower("app-rules", clock=lambda: now[0])
    follower.schedule = Schedule.from_options(every=None, cron="0 */6 * * *")
    ref = follower.followers[0]
    assert follower.next_delay(ref, TickResult("x", "unchanged")) == 4 * 3600 + 45 * 60
    now[0] = dt.datetime(2026, 11, 26, 11, 59, 30, tzinfo=dt.UTC)
    assert follower.next_delay(ref, TickResult("x", "unchanged")) == 30
