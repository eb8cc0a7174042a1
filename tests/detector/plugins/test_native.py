"""Native plugins through ctypes: the C plugin built here with gcc."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import load_config
from detector.plugins import (
    LazyPluginFields,
    PluginEventRef,
    events_from,
    load_plugins,
)
from detector.plugins.native import NativePlugin, plugin_event_bytes
from falcoctl_py.errors import DetectorError
from tests.detector.plugins.conftest import build_counter


def test_identity_capabilities_and_fields(counter_lib: Path) -> None:
    p = NativePlugin("counter", counter_lib, "")
    try:
        assert (p.info.name, p.info.version, p.info.id, p.info.event_source) == (
            "counter", "0.2.1", 999, "counter")
        assert p.info.sourcing and p.info.extraction
        assert [f.name for f in p.info.fields] == [
            "counter.n", "counter.msg", "counter.even", "counter.word"]
        assert p.info.fields[3].arg_required and p.info.fields[3].arg_key
    finally:
        p.destroy()


def test_events_and_extraction(counter_lib: Path) -> None:
    p = NativePlugin("counter", counter_lib, '{"prefix": "hey"}')
    try:
        events = list(events_from(p, "4"))
        assert [e.data for e in events] == [b"hey-1", b"hey-2", b"hey-3", b"hey-4"]
        assert events[0].ts == 1_700_000_000_000_000_001
        second = events[1]
        assert p.extract(second, "counter.n", None) == 2
        assert p.extract(second, "counter.msg", None) == "hey-2"
        assert p.extract(second, "counter.even", None) is True
        assert p.extract(second, "counter.word", "k") == "k:2"
        assert p.extract(second, "counter.word", None) is None
        assert p.extract(second, "counter.nope", None) is None
        lazy = LazyPluginFields({"counter.n": p, "counter.word": p}, second)
        assert lazy["counter.n"] == 2 and lazy.get("counter.word[x]") == "x:2"
        assert "counter.n" in lazy and "other.x" not in lazy and lazy.get("other.x") is None
    finally:
        p.destroy()


def test_several_fields_in_one_call(tmp_path: Path) -> None:
    p = NativePlugin("counter", build_counter(tmp_path, "-DCOUNTER_SYSCALL"), "")
    try:
        assert p.info.extract_sources == ["counter", "syscall"]
        (third,) = [e for e in events_from(p, "3") if e.num == 3]
        wanted = [("counter.msg", None), ("counter.nope", None), ("counter.word", "a"),
                  ("counter.n", None), ("counter.word", "b"), ("counter.calls", None)]
        first = p.extract_many(third, wanted)
        assert first[:5] == ["evt-3", None, "a:3", 3, "b:3"]
        again = p.extract_many(third, wanted)  # the prepared request is reused
        calls = first[5]
        assert isinstance(calls, int)
        assert again[:5] == first[:5] and again[5] == calls + 1  # one call each time
        syscall = PluginEventRef(num=7, ts=5, data=b"", source="syscall", tid=31337)
        assert p.extract_many(syscall, [("counter.tid", None), ("counter.n", None)]) == [
            31337, None]
    finally:
        p.destroy()


def test_init_failure_reports_the_plugins_error(counter_lib: Path) -> None:
    with pytest.raises(DetectorError, match="init failed: init refused: fail requested"):
        NativePlugin("counter", counter_lib, '{"fail": true}')


def test_required_api_version_is_checked(tmp_path: Path) -> None:
    src = (Path(__file__).parent / "data" / "counter.c").read_text()
    variant = tmp_path / "counter4.c"
    variant.write_text(src.replace('return "3.0.0";', 'return "4.0.0";'))
    import subprocess

    lib = tmp_path / "lib4.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(variant)], check=True)
    with pytest.raises(DetectorError, match=r"requires plugin API 4\.0\.0"):
        NativePlugin("counter", lib)


def test_not_a_plugin(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="cannot load"):
        NativePlugin("x", tmp_path / "missing.so")
    lib = build_counter(tmp_path, "-Dplugin_get_contact=renamed_contact")
    with pytest.raises(DetectorError, match="plugin_get_contact"):
        NativePlugin("x", lib)


def test_load_plugins_from_config(counter_lib: Path) -> None:
    cfg = load_config(overrides=[
        "load_plugins=[counter]", "plugins[0].name=counter",
        f"plugins[0].library_path={counter_lib}", "plugins[0].open_params=2",
    ])
    loaded = load_plugins(cfg)
    try:
        assert loaded.versions() == {"counter": "0.2.1"}
        assert list(loaded.sources()) == ["counter"]
        assert set(loaded.extractors("counter")) == {
            "counter.n", "counter.msg", "counter.even", "counter.word"}
        assert loaded.extractors("syscall") == {}
    finally:
        loaded.destroy()
    bad = load_config(overrides=["load_plugins=[ghost]"])
    with pytest.raises(DetectorError, match="ghost"):
        load_plugins(bad)


def test_plugin_event_layout() -> None:
    raw = plugin_event_bytes(5, 999, b"abc")
    assert len(raw) == 38 + 3 and raw[38:] == b"abc"
    assert PluginEventRef(1, 5, b"abc", "counter").plugin_id == 0
