"""A Python plugin for the tests: source "ticker" (id 998) and fields ticker.n / ticker.text."""

from __future__ import annotations

import json
from typing import Any, ClassVar


class Ticker:
    name = "ticker"
    version = "0.3.0"
    required_api_version = "3.0.0"
    description = "ticks for the tests"
    contact = "tests"
    id = 998
    event_source = "ticker"
    fields: ClassVar[list[dict[str, str]]] = [
        {"type": "uint64", "name": "ticker.n", "desc": "tick number"},
        {"type": "string", "name": "ticker.text", "desc": "payload"},
    ]

    def __init__(self, init_config: str) -> None:
        cfg = json.loads(init_config) if init_config else {}
        self.word = cfg.get("word", "tick")

    def open(self, params: str) -> dict[str, int]:
        return {"n": 0, "total": int(params or 3)}

    def next_batch(self, handle: dict[str, int]) -> tuple[int, list[tuple[int, bytes]]]:
        if handle["n"] >= handle["total"]:
            return 2, []
        handle["n"] += 1
        return 0, [(1_700_000_000_000_000_000 + handle["n"],
                    f"{self.word} {handle['n']}".encode())]

    def close(self, handle: Any) -> None:
        handle["closed"] = 1

    def extract(self, event: Any, field: str, arg: str | None) -> Any:
        n = event.data.decode().partition(" ")[2]
        return int(n) if field == "ticker.n" else event.data.decode()
