"""The plugins' parse step in the event loop: events/s through the whole runtime (rules,
state rows, no outputs) with a native C plugin that parses every syscall event and reads the
event thread's ``comm`` from the ``threads`` table, against the same run without the plugin;
then the cost of giving syscall events to native plugins as libscap records with their
parameters, against header-only records (the same plugin, the same events, the same run), and
the encoding alone. Noisy on a shared machine: read the ratios, not the absolute figures."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from detector.config import load_config
from detector.events import Event, FdInfo, ThreadInfo
from detector.plugins import native
from detector.plugins.abi import EVT_HEADER
from detector.plugins.scapevt import encode
from detector.runtime import Runtime
from detector.runtime.streams import IterableSource

N = 100_000
DATA = Path(__file__).resolve().parents[1] / "tests" / "detector" / "plugins" / "data"
RULES = ("- rule: bench\n  desc: bench\n  condition: evt.type = openat and proc.name = nobody\n"
         "  priority: WARNING\n  output: bench\n")
THREAD = ThreadInfo(tid=1, pid=1, comm="bench", exe="/usr/bin/bench", cwd="/srv/bench")


def _openat(i: int) -> Event:
    return Event(num=i, ts=i, type="openat", tid=1, res=3, thread=THREAD,
                 args={"fd": 3, "dirfd": -100, "name": f"/srv/bench/file-{i % 100}.txt",
                       "flags": 0o2000000, "mode": 0},
                 fd=FdInfo(num=3, name=f"/srv/bench/file-{i % 100}.txt", dev=2049, ino=i))


def _execve(i: int) -> Event:
    return Event(num=i, ts=i, type="execve", tid=1, res=0, thread=THREAD, args={
        "res": 0, "exe": "/usr/bin/bench", "args": ["--run", str(i), "--quiet"], "tid": 1,
        "pid": 1, "ptid": 0, "cwd": None, "comm": "bench", "filename": "/usr/bin/bench",
        "tty": 0, "loginuid": -1, "uid": 0, "gid": 0, "flags": 0, "env": b"PATH=/bin\0"})


def _rate(tmp: Path, *options: str) -> float:
    events: list[Event | None] = [_openat(i) for i in range(1, N + 1)]
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    cfg = load_config(overrides=[f"rules_files=[{rules}]", "stdout_output.enabled=false",
                                 "webserver.enabled=false", "engine.kind=nodriver",
                                 "append_output=[]", *options])
    rt = Runtime(cfg, source=IterableSource(events), watch=False)
    rt.thread_view.bind({1: THREAD})
    started = time.perf_counter()
    rt.run()
    return N / (time.perf_counter() - started)


@contextmanager
def _header_only() -> Iterator[None]:
    """Syscall events as bare scap headers (time, thread, no parameters), as before."""
    names = vars(native)  # the name NativePlugin._raw calls
    saved = names["scap_record"]

    def header(ev: Event) -> bytes:
        return EVT_HEADER.pack(ev.ts, ev.tid, EVT_HEADER.size, 0, 0)
    names["scap_record"] = header
    try:
        yield
    finally:
        names["scap_record"] = saved


def _encode_rate(make: Callable[[int], Event]) -> float:
    events = [make(i) for i in range(1, 20_001)]
    started = time.perf_counter()
    for ev in events:
        encode(ev)
    return len(events) / (time.perf_counter() - started)


def _build(gcc: str, tmp: Path, name: str) -> tuple[str, ...]:
    lib = tmp / f"lib{name}.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(DATA / f"{name}.c")],
                   check=True)
    return (f"load_plugins=[{name}]", f"plugins[0].name={name}",
            f"plugins[0].library_path={lib}")


def main() -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        print("skipped: gcc (builds the C plugins)")
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        plugin = _build(gcc, tmp, "parsecount")
        params = _build(gcc, tmp, "scapargs")
        base = parsed = parsed_bare = 0.0
        for _ in range(2):  # interleaved, best of two: the machine's load changes
            base = max(base, _rate(tmp))
            parsed = max(parsed, _rate(tmp, *plugin))
            with _header_only():
                parsed_bare = max(parsed_bare, _rate(tmp, *plugin))
        reading = _rate(tmp, *params)
    print(f"runtime, no plugin:                       {base:12,.0f} events/s")
    print(f"runtime, C plugin parsing all:            {parsed:12,.0f} events/s "
          f"({parsed / base:.2f}x of the run without it)")
    print(f"  same plugin, header-only records:       {parsed_bare:12,.0f} events/s "
          f"(libscap records: {parsed / parsed_bare:.2f}x of header-only)")
    print(f"runtime, C plugin reading openat params:  {reading:12,.0f} events/s "
          f"({reading / base:.2f}x of the run without it)")
    header = _encode_rate(lambda i: Event(num=i, ts=i, type="getpid", tid=1))
    for label, make in (("openat", _openat), ("execve", _execve)):
        rate = _encode_rate(make)
        print(f"encoding alone, {label} exit:            {rate:12,.0f} events/s "
              f"({rate / header:.2f}x of a header-only record)")
