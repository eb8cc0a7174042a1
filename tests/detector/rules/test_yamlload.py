"""String-preserving YAML loading with marks."""

from __future__ import annotations

import pytest

from detector.rules.load.yamlload import Mark, YamlError, YList, YMap, YStr, load_documents


def test_scalars_stay_text_with_marks() -> None:
    (doc,) = load_documents("- list: ports\n  items: [80, 0755, on, [=], '']\n  empty:\n")
    assert isinstance(doc, YList)
    item = doc[0]
    assert isinstance(item, YMap) and item.mark == Mark(0, 2, 2)
    items = item["items"]
    assert items == ["80", "0755", "on", ["="], ""]
    assert isinstance(items, YList) and all(isinstance(v, (YStr, YList)) for v in items)
    assert isinstance(items[1], YStr) and items[1].mark.line == 1
    empty, blank = item["empty"], items[4]
    assert isinstance(empty, YStr) and isinstance(blank, YStr)
    assert empty.is_null and not blank.is_null
    assert item.key_marks["items"] == Mark(1, 2, 16)


def test_documents_and_nulls() -> None:
    assert load_documents("") == []
    assert load_documents("---\n---\n- a\n") == [None, ["a"]]


@pytest.mark.parametrize("text, message", [
    ("this : is : not : yaml", "yaml-cpp: error at line 1, column 11: illegal map value"),
    ("- [unclosed", "yaml-cpp: error at line 2, column 1:"),
    ("\x00binary", "yaml-cpp:"),
    ("bad \udcff surrogate", "invalid UTF-8"),
])
def test_errors_are_located(text: str, message: str) -> None:
    with pytest.raises(YamlError) as info:
        load_documents(text)
    assert message in str(info.value)
