"""The rules watcher sees writes, mv into the directory, deletion and ConfigMap swaps."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.runtime.watch import RulesWatcher

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


def _drain(q: queue.Queue[str]) -> str:
    got = [q.get(timeout=10)]
    while True:
        try:
            got.append(q.get(timeout=0.3))
        except queue.Empty:
            return " | ".join(got)


def test_write_and_close(watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    (tmp / "rules.d" / "a.yaml").write_text("- list: a\n  items: [x]\n")
    assert "a.yaml" in _drain(changes)
    (tmp / "single.yaml").write_text("- list: b\n  items: []\n")
    assert "single.yaml" in _drain(changes)


def test_mv_into_dir_and_delete(watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    staged = tmp / "staged.yaml"
    staged.write_text("[]\n")
    os.rename(staged, tmp / "rules.d" / "b.yaml")
    assert "b.yaml" in _drain(changes)
    (tmp / "rules.d" / "b.yaml").unlink()
    assert "b.yaml" in _drain(changes)


def test_unrelated_files_are_ignored(watched: tuple[Path, queue.Queue[str]]) -> None:
    tmp, changes = watched
    (tmp / "rules.d" / "notes.txt").write_text("x")
    (tmp / "rules.d" / "c.yaml").write_text("[]\n")
    assert "notes.txt" not in _drain(changes)


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
        assert "..data" in _drain(changes)
        # A second swap is seen too: the watches were re-armed.
        newer = mount / "..2026_03"
        newer.mkdir()
        (newer / "rules.yaml").write_text("[]\n")
        os.symlink("..2026_03", mount / "..data_tmp")
        os.rename(mount / "..data_tmp", mount / "..data")
        assert "..data" in _drain(changes)
    finally:
        watcher.stop()
