"""The parse step the event loop runs: which events reach a native plugin's
``plugin_parse_event`` (its parse sources), and a failing parse is warned about once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from detector.config import load_config
from detector.events import Event, ThreadInfo
from detector.plugins import load_plugins
from detector.plugins.base import PluginEventRef
from detector.plugins.parsing import EventParsers, event_parsers
from detector.plugins.threadview import ThreadView
from tests.detector.plugins.conftest import build_plugin


@pytest.fixture(scope="module")
def sdk_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_plugin("sdkstyle", tmp_path_factory.mktemp("sdkparse"))


def test_parse_sources_choose_the_events(sdk_lib: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "detector.plugins")
    cfg = load_config(overrides=["load_plugins=[sdkstyle]", "plugins[0].name=sdkstyle",
                                 f"plugins[0].library_path={sdk_lib}"])
    view = ThreadView({7: ThreadInfo(tid=7, pid=7, comm="bash")})
    loaded = load_plugins(cfg, threads=view)
    try:
        parsers = event_parsers(loaded)
        assert isinstance(parsers, EventParsers)
        known = Event(num=1, ts=1, type="openat", tid=7)
        parsers(known)
        assert (parsers.parsed, parsers.failed) == (1, 0)
        # its own source is not in its parse sources (["syscall"]): not parsed
        parsers(Event(num=2, ts=2, type="pluginevent", source="sdkstyle", plugin_data=b"hi"))
        assert (parsers.parsed, parsers.failed) == (1, 0)
        # a thread the table lacks: the plugin fails; one warning however often
        for num in (3, 4):
            parsers(Event(num=num, ts=num, type="openat", tid=99))
        assert (parsers.parsed, parsers.failed) == (1, 2)
        warned = [r.getMessage() for r in caplog.records if "plugin_parse_event" in r.getMessage()]
        assert len(warned) == 1 and "'sdkstyle'" in warned[0]
        ((_, plugin),) = loaded.plugins
        ref = PluginEventRef(num=5, ts=5, data=b"", source="syscall", tid=7)
        assert plugin.extract(ref, "sdk.cid", None) == "c-7"  # what parsing wrote
    finally:
        loaded.destroy()


def test_no_parsing_plugin_no_parse_step() -> None:
    assert event_parsers(load_plugins(load_config())) is None
