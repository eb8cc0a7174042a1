"""The index.yaml format: typed, bounded entries."""

from __future__ import annotations

import pytest

from falcoctl_py.errors import LocatedError
from falcoctl_py.index.model import dump_index, parse_index

INDEX = """\
- name: falco-rules
  type: rulesfile
  registry: ghcr.io
  repository: falcosecurity/rules/falco-rules
  description: Falco rules that are loaded by default
  home: https://github.com/falcosecurity/rules
  keywords: [falco-rules]
  license: apache-2.0
  maintainers:
    - {email: cncf-falco-dev@lists.cncf.io, name: The Falco Authors}
  sources: [https://github.com/falcosecurity/rules/blob/main/rules/falco_rules.yaml]
  signature:
    cosign:
      certificate-oidc-issuer: https://token.actions.githubusercontent.com
      certificate-identity-regexp: https://github.com/falcosecurity/rules/
- name: k8saudit
  type: plugin
  registry: ghcr.io
  repository: falcosecurity/plugins/plugin/k8saudit
  keywords: [audit, audit-log, kubernetes]
  unknown-field: ignored
"""


def test_parse_reads_every_field() -> None:
    entries = parse_index(INDEX.encode(), source="index.yaml", index_name="main")
    rules, audit = entries
    assert rules.name == "falco-rules" and rules.type == "rulesfile"
    assert rules.ref == "ghcr.io/falcosecurity/rules/falco-rules"
    assert rules.license == "apache-2.0" and rules.home.endswith("/rules")
    assert rules.maintainers[0].name == "The Falco Authors"
    assert rules.sources[0].endswith("falco_rules.yaml")
    assert rules.signature is not None and rules.signature.cosign is not None
    assert rules.signature.cosign.certificate_identity_regexp == (
        "https://github.com/falcosecurity/rules/")
    assert rules.index == "main"
    assert audit.keywords == ["audit", "audit-log", "kubernetes"] and audit.signature is None


def test_dump_then_parse_round_trips_sorted() -> None:
    entries = parse_index(INDEX, source="x")
    text = dump_index(reversed(entries))
    again = parse_index(text, source="y")
    assert [e.name for e in again] == ["falco-rules", "k8saudit"]
    assert again == entries


def test_empty_index_has_no_entries() -> None:
    assert parse_index(b"", source="x") == []


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("- name: a\n  registry: [oops\n", 3, "invalid YAML"),
        ("name: a\nregistry: r\n", 1, "must be a YAML list"),
        ("- name: a\n  registry: r\n  repository: x\n- just a string\n", 4, "must be a mapping"),
        ("- name: a\n  registry: r\n  repository: x\n- type: plugin\n  registry: r\n", 4,
         "no 'name'"),
        ("- name: a\n  registry: r\n  repository: x\n- name: a\n  registry: r\n"
         "  repository: y\n", 4, "duplicate entry 'a'"),
        ("- name: a\n  registry: r\n  repository: x\n  keywords: {a: b}\n", 1,
         "list of strings"),
    ],
)
def test_malformed_index_names_source_and_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(LocatedError) as err:
        parse_index(text, source="http://127.0.0.1:1/index.yaml")
    assert err.value.line == line
    assert needle in str(err.value)
    assert str(err.value).startswith(f"http://127.0.0.1:1/index.yaml:{line}: ")
    assert "\n" not in err.value.one_line()


