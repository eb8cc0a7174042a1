"""The plugins' parse step in the event loop: events/s through the whole runtime (rules,
state rows, no outputs) with a native C plugin that parses every syscall event and reads the
event thread's ``comm`` from the ``threads`` table, against the same run without the plugin.
Noisy on a shared machine: read the ratio, not the absolute figures."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from detector.config import load_config
from detector.events import Event, ThreadInfo
from detector.runtime import Runtime
from detector.runtime.streams import IterableSource

N = 100_000
DATA = Path(__file__).resolve().parents[1] / "tests" / "detector" / "plugins" / "data"
RULES = ("- rule: bench\n  desc: bench\n  condition: evt.type = openat and proc.name = nobody\n"
         "  priority: WARNING\n  output: bench\n")


def _rate(tmp: Path, *options: str) -> float:
    thread = ThreadInfo(tid=1, pid=1, comm="bench")
    events: list[Event | None] = [Event(num=i, ts=i, type="openat", tid=1, thread=thread)
                                  for i in range(1, N + 1)]
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    cfg = load_config(overrides=[f"rules_files=[{rules}]", "stdout_output.enabled=false",
                                 "webserver.enabled=false", "engine.kind=nodriver",
                                 "append_output=[]", *options])
    rt = Runtime(cfg, source=IterableSource(events), watch=False)
    rt.thread_view.bind({1: thread})
    started = time.perf_counter()
    rt.run()
    return N / (time.perf_counter() - started)


def main() -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        print("skipped: gcc (builds the C plugin)")
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        lib = tmp / "libparsecount.so"
        subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(lib),
                        str(DATA / "parsecount.c")], check=True)
        plugin = ("load_plugins=[parsecount]", "plugins[0].name=parsecount",
                  f"plugins[0].library_path={lib}")
        base = _rate(tmp)
        parsed = _rate(tmp, *plugin)
        base2 = _rate(tmp)
    base = max(base, base2)
    print(f"runtime, no plugin:            {base:12,.0f} events/s")
    print(f"runtime, C plugin parsing all: {parsed:12,.0f} events/s "
          f"({parsed / base:.2f}x of the run without it)")
