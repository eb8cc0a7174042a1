"""Change summaries: files and rules by name, with Falco YAML kept as text."""

from __future__ import annotations

from pathlib import Path

from falcoctl_py.follow.diff import ChangeSummary, rules_by_name, summarize

FALCO_RULES = Path(__file__).resolve().parents[4] / "shared" / "falco-rules" / "falco_rules.yaml"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_summary_of_files_and_rules(tmp_path: Path) -> None:
    old = {
        "a.yaml": write(tmp_path / "old", "a.yaml", "- rule: same\n  x: 1\n- rule: gone\n"),
        "b.yaml": write(tmp_path / "old", "b.yaml", "- rule: moved out\n"),
        "c.txt": write(tmp_path / "old", "c.txt", "same"),
    }
    new = {
        "a.yaml": write(tmp_path / "new", "a.yaml", "- rule: same\n  x:   1\n- rule: fresh\n"),
        "c.txt": write(tmp_path / "new", "c.txt", "same"),
        "d.yaml": write(tmp_path / "new", "d.yaml", "- rule: moved out\n  enabled: false\n"),
    }
    got = summarize(ChangeSummary("r", "h/r:latest", "1.0.0", "1.1.0"), old, new, rules=True)
    assert (got.files_added, got.files_removed, got.files_changed) == (
        ["d.yaml"],
        ["b.yaml"],
        ["a.yaml"],
    )
    assert (got.rules_added, got.rules_removed, got.rules_changed) == (
        ["fresh"],
        ["gone"],
        ["moved out"],
    )
    text = got.text()
    assert text.startswith("r 1.0.0 -> 1.1.0: files added: 'd.yaml'")
    assert "rules changed: 'moved out'" in text


def test_falco_yaml_is_read_as_text_and_bad_yaml_is_empty(tmp_path: Path) -> None:
    on = write(tmp_path, "on.yaml", "- rule: r\n  condition: evt.type in (open) and fd.num=[=]\n")
    assert rules_by_name(on) == {"r": "{condition:evt.type in (open) and fd.num=[=],rule:r}"}
    assert rules_by_name(write(tmp_path, "bad.yaml", "- rule: [unclosed\n")) == {}
    if FALCO_RULES.exists():
        assert len(rules_by_name(FALCO_RULES)) > 20
