"""Merging indexes and search scoring."""

from __future__ import annotations

import pytest

from falcoctl_py.index.model import IndexEntry
from falcoctl_py.index.search import MergedIndex, levenshtein, score


def entry(name: str, kind: str = "rulesfile", keywords: list[str] | None = None,
          registry: str = "r.example") -> IndexEntry:
    return IndexEntry(name=name, type=kind, registry=registry, repository=f"org/{name}",
                      keywords=keywords or [])


def test_merge_later_index_wins_and_keeps_first_position() -> None:
    merged = MergedIndex([
        ("first", [entry("a", registry="one"), entry("b", registry="one")]),
        ("second", [entry("b", registry="two"), entry("c", registry="two")]),
    ])
    assert [e.name for e in merged.entries()] == ["a", "b", "c"]
    b = merged.get("b")
    assert b is not None and b.registry == "two" and b.index == "second"
    assert merged.get("nope") is None
    assert [e.name for e in merged.entries(index="first")] == ["a"]
    assert len(merged) == 3


def test_levenshtein_and_score() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("Falco", "falco") == 0
    assert score("falco-rules", "falco-rules") == 1.0
    assert score("k8saudit", "k8saudi") == pytest.approx(7 / 8)
    assert score("abc", "xyz") == 0.0


def test_search_by_name_score_and_keyword_substring() -> None:
    merged = MergedIndex([("i", [
        entry("falco-rules", keywords=["falco-rules"]),
        entry("k8saudit", "plugin", keywords=["audit", "kubernetes"]),
        entry("cloudtrail", "plugin", keywords=["aws"]),
    ])])
    assert [h.entry.name for h in merged.search(["falco-rule"])] == ["falco-rules"]
    assert [h.entry.name for h in merged.search(["kube"])] == ["k8saudit"]  # keyword substring
    assert merged.search(["cloud"]) == []  # 5/10 similarity < 0.65, no keyword
    assert [h.entry.name for h in merged.search(["cloud"], min_score=0.5)] == ["cloudtrail"]
    hits = merged.search(["k8saudit", "cloudtrail"])
    assert [(h.entry.name, h.score) for h in hits] == [("cloudtrail", 1.0), ("k8saudit", 1.0)]
    assert [h.entry.name for h in merged.search(["audit"], type="rulesfile")] == []
