"""Python plugins through entry points, with the same capabilities as native ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import load_config
from detector.plugins import events_from, load_plugins
from detector.plugins.python import available
from falcoctl_py.errors import DetectorError
from tests.detector.plugins.conftest import install_python_plugin


def test_entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(install_python_plugin(tmp_path)))
    assert "ticker" in available()
    cfg = load_config(overrides=[
        "load_plugins=[ticker]", "plugins[0].name=ticker",
        "plugins[0].library_path=python:ticker", "plugins[0].init_config={word: tock}",
    ])
    loaded = load_plugins(cfg)
    try:
        (_, p), = loaded.plugins
        assert p.info.event_source == "ticker" and p.info.id == 998 and p.info.sourcing
        events = list(events_from(p, "2"))
        assert [e.data for e in events] == [b"tock 1", b"tock 2"]
        assert p.extract(events[1], "ticker.n", None) == 2
        assert p.extract_many(events[1], [("ticker.text", None), ("other.x", None),
                                          ("ticker.n", None)]) == ["tock 2", None, 2]
        assert loaded.versions() == {"ticker": "0.3.0"}
    finally:
        loaded.destroy()


def test_missing_entry_point() -> None:
    cfg = load_config(overrides=["load_plugins=[nope]", "plugins[0].name=nope",
                                 "plugins[0].library_path=python:nope"])
    with pytest.raises(DetectorError, match="no Python plugin entry point 'nope'"):
        load_plugins(cfg)
