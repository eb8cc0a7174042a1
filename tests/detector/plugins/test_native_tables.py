"""An SDK-style native plugin (built here with gcc) gets the threads table and a logger in
plugin_init, as Falco 0.42+ gives them, reads the table when extracting, and its events stamped
``(uint64_t)-1`` get the current time."""

from __future__ import annotations

import ctypes
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector.events import ThreadInfo
from detector.plugins.base import PluginEventRef
from detector.plugins.native import NativePlugin
from detector.plugins.threadview import FIELD_NAMES, ThreadView
from tests.detector.plugins.conftest import DATA, build_plugin
from tests.realparts import need_binary

THREADS = ThreadView({7: ThreadInfo(tid=7, pid=7, comm="bash", exe="/bin/bash")})


@pytest.fixture(scope="module")
def sdk_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_plugin("sdkstyle", tmp_path_factory.mktemp("sdk"))


def test_init_reads_tables_and_logs(sdk_lib: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "detector.plugins")
    plugin = NativePlugin("sdkstyle", sdk_lib, threads=THREADS)
    try:
        assert plugin.info.sourcing and plugin.info.extraction
        logged = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
        assert ("detector.plugins.sdkstyle", logging.INFO,
                f"threads table has {len(FIELD_NAMES)} fields") in logged
        assert ("detector.plugins.sdkstyle", logging.DEBUG, "[sdkstyle-init] ready") in logged
    finally:
        plugin.destroy()


def test_events_stamped_minus_one_get_the_current_time(sdk_lib: Path) -> None:
    plugin = NativePlugin("sdkstyle", sdk_lib)
    try:
        handle = plugin.open("")
        before = time.time_ns()
        rc, events = plugin.next_batch(handle)
        assert rc == 0 and [payload for _, payload in events] == [b"hi"]
        assert before <= events[0][0] <= time.time_ns()
        plugin.close(handle)
    finally:
        plugin.destroy()


def test_extraction_reads_the_threads_table(sdk_lib: Path) -> None:
    plugin = NativePlugin("sdkstyle", sdk_lib, threads=THREADS)
    try:
        known = PluginEventRef(num=1, ts=1, data=b"", source="syscall", tid=7)
        unknown = PluginEventRef(num=2, ts=2, data=b"", source="syscall", tid=8)
        assert plugin.extract_many(known, [("sdk.comm", None), ("sdk.nfields", None)]) == [
            "bash", len(FIELD_NAMES)]
        assert plugin.extract(unknown, "sdk.comm", None) is None
    finally:
        plugin.destroy()


def test_parsing_writes_a_field_extraction_reads(sdk_lib: Path) -> None:
    plugin = NativePlugin("sdkstyle", sdk_lib, threads=THREADS)
    try:
        assert plugin.info.parse_sources == ["syscall"]
        evt = PluginEventRef(num=1, ts=1, data=b"", source="syscall", tid=7)
        assert plugin.extract(evt, "sdk.cid", None) == ""  # not parsed yet: empty
        assert plugin.parse(evt)
        assert plugin.extract_many(evt, [("sdk.comm", None), ("sdk.cid", None)]) == [
            "bash", "c-7"]
        assert not plugin.parse(PluginEventRef(num=2, ts=2, data=b"", source="syscall", tid=9))
    finally:
        plugin.destroy()


def test_loading_in_a_fresh_process_does_not_crash(sdk_lib: Path) -> None:
    """The crash this fixes was a segmentation fault in plugin_init: check it in a child."""
    code = ("from pathlib import Path; from detector.plugins.native import NativePlugin; "
            f"p = NativePlugin('sdkstyle', Path({str(sdk_lib)!r})); h = p.open(''); "
            "print(len(p.next_batch(h)[1])); p.close(h); p.destroy()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_ctypes_layouts_match_the_c_structs(tmp_path: Path) -> None:
    from detector.plugins import tables
    from detector.plugins.native import (
        SsPluginEventParseInput,
        SsPluginFieldExtractInput,
        SsPluginInitInput,
    )

    gcc = need_binary("gcc")
    exe = tmp_path / "layout"
    subprocess.run([gcc, "-DSDK_LAYOUT", "-o", str(exe), str(DATA / "sdkstyle.c")],
                   check=True, capture_output=True)
    c = {line.split()[0]: [int(v) for v in line.split()[1:]]
         for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                    check=True).stdout.splitlines()}
    py = {
        "init_input": [ctypes.sizeof(SsPluginInitInput), SsPluginInitInput.tables.offset,
                       SsPluginInitInput.log_fn.offset],
        "tables_input": [ctypes.sizeof(tables.InitTablesInput),
                         tables.InitTablesInput.fields_ext.offset,
                         tables.InitTablesInput.reader_ext.offset,
                         tables.InitTablesInput.writer_ext.offset],
        "extract_input": [ctypes.sizeof(SsPluginFieldExtractInput),
                          SsPluginFieldExtractInput.table_reader_ext.offset,
                          SsPluginFieldExtractInput.value_offsets.offset],
        "parse_input": [ctypes.sizeof(SsPluginEventParseInput),
                        SsPluginEventParseInput.table_reader_ext.offset,
                        SsPluginEventParseInput.table_writer_ext.offset],
        "reader_vt": [ctypes.sizeof(tables.ReaderVtableExt)],
        "writer_vt": [ctypes.sizeof(tables.WriterVtableExt)],
        "fields_vt": [ctypes.sizeof(tables.FieldsVtable)],
        "fieldinfo": [ctypes.sizeof(tables.FieldInfo)],
    }
    assert py == c
