"""What a gap between two batches costs the next batch: per-event CPU of the same records
replayed without a pause, and in batches with a pause between them.

The live detector spends 2-9x per delivered event what a continuous replay of the same records
costs (bench_ebpf against bench_hotpath). This benchmark replays issue 14's captured records
(bench/hotpath_capture.py: the stable rules' kernel filters on, the workload's processes only)
through decode, state and the stable rules, pinned to CPU 0, in batches of B events with a
pause of G between batches: a sleep (the reader waiting for its ring buffer) or a busy spin
(the CPU kept, the caches not refilled by this process). Only the batches' own CPU time
(``CLOCK_THREAD_CPUTIME_ID``) is counted. Printed per workload: the continuous cost, each
batched cost as a ratio to it, and the extra CPU each batch paid ("cold start"): what one
wake-up of the reader costs beyond its events, which sizes the feed's pace. Continuous and
batched passes alternate, best of NAPS_ROUNDS; the machine is shared, so only the ratios
within one run mean something.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baseline import missing

REPO = Path(__file__).resolve().parents[1]
RULES = Path(os.environ.get("FALCO_RULES", REPO.parents[0] / "shared/falco-rules/falco_rules.yaml"))
ROUNDS = int(os.environ.get("NAPS_ROUNDS", "3"))
EVENTS = 1500  # records replayed per workload and pass
# (batch size, pause in seconds, how): the reader's small batches and its pace
GRID = [(16, 0.001, "sleep"), (16, 0.008, "sleep"), (16, 0.030, "sleep"), (16, 0.008, "spin"),
        (128, 0.008, "sleep"), (128, 0.030, "sleep")]  # fmt: skip


class Replayer:
    """Decode + state + rules over captured records, timing only the batches."""

    def __init__(self, capture: dict[str, Any]) -> None:
        from detector.config import load_config
        from detector.runtime.ruleset import compile_rules
        from detector.sources import decode as py_decode
        from detector.sources import fast

        self.engine: Any = compile_rules(files=[RULES], config=load_config()).engine
        self.decode = fast.decode_compiled if fast.LEAN is not None else py_decode.decode
        self.threads = pickle.dumps(capture["threads"])
        self.boot = capture["boot"]

    def us_per_event(self, records: list[bytes], batch: int, pause: float, how: str) -> float:
        """CPU us per event, counting the batches only."""
        from detector.state.tracker import StateTracker

        tracker = StateTracker(fetch_containers=False)
        for th in pickle.loads(self.threads).values():
            tracker.put_thread(th)
        decode, process, rules, boot = self.decode, tracker.process, self.engine.process, self.boot
        gc.collect()
        cpu = 0
        for start in range(0, len(records), batch):
            t0 = time.thread_time_ns()
            for num, rec in enumerate(records[start : start + batch], start):
                ev = decode(rec, num, boot, 0)
                process(ev)
                rules(ev)
            cpu += time.thread_time_ns() - t0
            if how == "spin":
                end = time.perf_counter() + pause
                while time.perf_counter() < end:
                    pass
            elif pause:
                time.sleep(pause)
        tracker.close()
        return cpu / len(records) / 1e3


def _report(label: str, cont: float, rows: list[tuple[int, float, str, float]]) -> None:
    print(f"{label}: continuous {cont:.2f} us per event")
    for batch, pause, how, us in rows:
        cold = (us - cont) * batch
        print(f"    batches of {batch:>3}, {how} {pause * 1e3:4.0f} ms between: {us:6.2f} us per "
              f"event = {us / cont:.2f} x continuous; each batch paid {cold:5.0f} us "
              "more")  # fmt: skip


def main() -> None:
    why = missing(RULES)
    if why is not None:
        print(f"skipped: {why}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture.pkl"
        subprocess.run([sys.executable, "-m", "bench.hotpath_capture", str(path), str(RULES)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)  # fmt: skip
        with open(path, "rb") as f:
            capture = pickle.load(f)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        replayer = Replayer(capture)
        for label, records in capture["records"].items():
            records = records[:EVENTS]
            cont, best = float("inf"), [float("inf")] * len(GRID)
            for _ in range(ROUNDS):  # continuous and each batched pass in turn
                cont = min(cont, replayer.us_per_event(records, len(records), 0, ""))
                for i, (batch, pause, how) in enumerate(GRID):
                    best[i] = min(best[i], replayer.us_per_event(records, batch, pause, how))
            rows = [(*g, us) for g, us in zip(GRID, best, strict=True)]
            _report(f"{label} ({len(records):,} records)", cont, rows)
    finally:
        os.sched_setaffinity(0, affinity)


if __name__ == "__main__":
    main()
