"""The rules watcher sees writes, mv into the directory, deletion and ConfigMap swaps."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.runtime.watch import RulesWatcher
from tests.eventually import eventually

MODES = [False, True]  # inotify, then the polling fallback


@pytest.fixture(params=MODES, ids=["inotify", "polling"])
def watched(request: pytest.FixtureRequest, tmp_path: Path
            ) -> Iterator[tuple[Path, queue.Queue[str]]]:
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    (rules_dir / "a.yaml").write_text("- list: a\n  items: []\n")
    single = tmp_path / "single.yaml"
    single.write_text("[]\n")
    changes: queue.Queue[str] = queue.Queue()
    watcher = RulesWatcher(lambda: [rules_dir, single], changes.put,
                           poll_interval=0.1, force_polling=request.param).start()
    assert watcher.mode == ("polling" if request.param else "inotify")
    try:
        yield tmp_path, changes
    finally:
        watcher.stop()


def _seen(q: queue.Queue[str], needle: str) -> str:
    """The changes reported up to the first one naming ``needle`` (waits for it)."""
    got: list[str] = []

    def probe() -> str | None:
        while not q.empty():
            got.append(q.get_nowait())
            if needle in got[-1]:
                return " | ".join(got)
        return None

    return eventually(probe, what=f"a change naming {needle}")


def test_write_and_close(watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    (tmp / "rules.d" / "a.yaml").write_text("- list: a\n  items: [x]\n")
    _seen(changes, "a.yaml")
    (tmp / "single.yaml").write_text("- list: b\n  items: []\n")
    _seen(changes, "single.yaml")


def test_mv_into_dir_and_delete(watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    staged = tmp / "staged.yaml"
    staged.write_text("[]\n")
    os.rename(staged, tmp / "rules.d" / "b.yaml")
    _seen(changes, "b.yaml")  # nothing more names b.yaml until it is deleted
    (tmp / "rules.d" / "b.yaml").unlink()
    _seen(changes, "b.yaml")


def test_unrelated_files_are_ignored(watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    (tmp / "rules.d" / "notes.txt").write_text("x")
    (tmp / "rules.d" / "c.yaml").write_text("[]\n")
    assert "notes.txt" not in _seen(changes, "c.yaml")  # reported in order: notes.txt first


def test_configmap_symlink_swap(tmp_path: Path) -> None:
    # Kubernetes' atomic writer: ..<ts>/ dirs, ..data -> ..<ts>, rules.yaml -> ..data/rules.yaml
    mount = tmp_path / "rules.d"
    mount.mkdir()
    old = mount / "..2026_01"
    old.mkdir()
    (old / "rules.yaml").write_text("- list: a\n  items: []\n")
    os.symlink("..2026_01", mount / "..data")
    os.symlink("..data/rules.yaml", mount / "rules.yaml")
    changes: queue.Queue[str] = queue.Queue()
    watcher = RulesWatcher(lambda: [mount], changes.put).start()
    try:
        new = mount / "..2026_02"
        new.mkdir()
        (new / "rules.yaml").write_text("- list: a\n  items: [b]\n")
        os.symlink("..2026_02", mount / "..data_tmp")
        os.rename(mount / "..data_tmp", mount / "..data")
        for child in old.iterdir():
            child.unlink()
        old.rmdir()
        _seen(changes, "..data")
        # A second swap is seen too: the watches were re-armed.
        newer = mount / "..2026_03"
        newer.mkdir()
        (newer / "rules.yaml").write_text("[]\n")
        os.symlink("..2026_03", mount / "..data_tmp")
        os.rename(mount / "..data_tmp", mount / "..data")
        _seen(changes, "..data")
    finally:
        watcher.stop()


def test_moves_during_the_rearm_after_a_change_are_seen(
        watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    names = [f"m{i}.yaml" for i in range(40)]
    for name in names:  # each move re-arms the watches while the next ones land
        (tmp / "staged").write_text("[]\n")
        os.rename(tmp / "staged", tmp / "rules.d" / name)
    seen = _seen(changes, names[-1])
    eventually(lambda: all(n in seen + " ".join(list(changes.queue)) for n in names),
               what="every move reported")
