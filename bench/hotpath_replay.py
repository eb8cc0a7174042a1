"""Replay for bench_hotpath: captured raw records decoded (the compiled decoder when built),
through the state tracker and the stable rules of whatever ``detector`` is first on the path.

``python hotpath_replay.py CAPTURE RULES ROUNDS`` prints one JSON line: per workload the
records and the best-of-ROUNDS nanoseconds (decode, state, rules), and the alerts per rule.
"""

from __future__ import annotations

import gc
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any


def _round(cap: dict[str, Any], engine: Any, fired: dict[str, int]) -> dict[str, list[int]]:
    from detector.sources import decode as py_decode
    from detector.sources import fast
    from detector.state.tracker import StateTracker

    decode = fast.decode_compiled if fast.LEAN is not None else py_decode.decode
    clock = time.perf_counter_ns
    out: dict[str, list[int]] = {}
    for label, records in cap["records"].items():
        tracker = StateTracker(fetch_containers=False)
        for th in pickle.loads(cap["threads"]).values():
            tracker.put_thread(th)
        process, rules, boot = tracker.process, engine.process, cap["boot"]
        row = out[label] = [len(records), 0, 0, 0]
        gc.collect()
        for num, rec in enumerate(records):
            a = clock()
            ev = decode(rec, num, boot, 0)
            b = clock()
            process(ev)
            c = clock()
            alerts = rules(ev)
            d = clock()
            row[1] += b - a
            row[2] += c - b
            row[3] += d - c
            for alert in alerts:
                key = f"{label}: {alert.rule}"
                fired[key] = fired.get(key, 0) + 1
        tracker.close()
    return out


def main(path: str, rules_file: str, rounds: int) -> None:
    from detector.config import load_config
    from detector.runtime.ruleset import compile_rules

    engine: Any = compile_rules(files=[Path(rules_file)], config=load_config()).engine
    with open(path, "rb") as f:
        cap = pickle.load(f)
    cap["threads"] = pickle.dumps(cap["threads"])  # a fresh copy of the table per workload
    for ty in ("execve", "openat", "open", "connect"):  # built lazily in older revisions
        engine._index.matcher(ty)
    best: dict[str, list[int]] = {}
    fired: dict[str, int] = {}
    for _ in range(rounds):
        fired = {}
        for label, row in _round(cap, engine, fired).items():
            old = best.get(label)
            best[label] = [row[0], *(min(x, y) for x, y in zip(row[1:], old[1:], strict=True))] \
                if old else row
    print(json.dumps({"times": best, "alerts": fired}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
