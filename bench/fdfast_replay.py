"""Replay for bench_fdfast: the captured events through the state tracker and the stable rules
of whatever ``detector`` is first on the path (this tree's, or the baseline's from git).

Prints one JSON line: per workload and event type, events and best-of-ROUNDS nanoseconds in
the state and in the rules (``times``), and the alerts per workload and rule (``alerts``).
``python fdfast_replay.py CAPTURE RULES ROUNDS [profile]``; with
``profile`` it prints cProfile's top functions of one round instead.
"""

from __future__ import annotations

import gc
import json
import pickle
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def _round(path: str, engine: Any, fired: dict[str, int]) -> dict[str, dict[str, list[int]]]:
    from detector.state.tracker import StateTracker

    with open(path, "rb") as f:
        cap = pickle.load(f)
    out: dict[str, dict[str, list[int]]] = {}
    clock = time.perf_counter_ns
    rules = engine.process
    index = getattr(engine, "_index", None)
    for etype in {ev.type for evs in cap["events"].values() for ev in evs}:
        if index is not None:
            index.matcher(etype)  # built once per run, before any timing
    gc.collect()
    gc.disable()  # a collection's pause would land on whichever event type runs then
    for label, events in cap["events"].items():
        tracker = StateTracker(fetch_containers=False)
        for th in cap["threads"].values():
            tracker.put_thread(th)
        process = tracker.process
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for ev in events:
            a = clock()
            process(ev)
            b = clock()
            alerts = rules(ev)
            c = clock()
            row = per[ev.type]
            row[0] += 1
            row[1] += b - a
            row[2] += c - b
            for alert in alerts:
                fired[f"{label}: {alert.rule}"] = fired.get(f"{label}: {alert.rule}", 0) + 1
        out[label] = dict(per)
        tracker.close()
    gc.enable()
    return out


def main(path: str, rules_file: str, rounds: int, profile: bool) -> None:
    from detector.config import load_config
    from detector.runtime.ruleset import compile_rules

    engine = compile_rules(files=[Path(rules_file)], config=load_config()).engine
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        _round(path, engine, {})
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(45)
        return
    best: dict[str, dict[str, list[int]]] = {}
    fired: dict[str, int] = {}
    for _ in range(rounds):
        got = _round(path, engine, fired)
        for label, per in got.items():
            mine = best.setdefault(label, {})
            for etype, (n, s, r) in per.items():
                old = mine.get(etype)
                mine[etype] = [n, min(s, old[1]) if old else s, min(r, old[2]) if old else r]
    print(json.dumps({"times": best, "alerts": fired}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:5] == ["profile"])
