"""Version ranges, reference parsing against an index, and dependency resolution."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from falcoctl_py.artifact.resolve import (
    ArtifactRef,
    Node,
    parse_artifact_ref,
    pin,
    resolve_dependencies,
)
from falcoctl_py.artifact.versions import best_tag, latest_compatible, parse_range
from falcoctl_py.errors import DependencyError, NotFoundError, UsageError
from falcoctl_py.oci.media import Dependency

TAGS = [
    "latest",
    "4",
    "4.2.0",
    "5",
    "5.0",
    "5.0.0",
    "5.1.0",
    "5.1.3",
    "5.2.0",
    "6.0.0-rc1",
    "6.0.0",
    "sha256-" + "a" * 64 + ".sig",
]


@pytest.mark.parametrize(
    ("spec", "tag"),
    [
        ("^5", "5.2.0"),
        ("~5.1", "5.1.3"),
        (">=4,<6", "5.2.0"),
        (">=4 <5", "4.2.0"),
        ("=5.1.0", "5.1.0"),
        ("^6", "6.0.0"),
        ("<5", "4.2.0"),
        (">5.1", "6.0.0"),
        ("~5", "5.2.0"),
        ("^7", None),
        (">=6.0.0-rc0", "6.0.0"),
    ],
)
def test_ranges_pick_highest_matching_tag(spec: str, tag: str | None) -> None:
    assert best_tag(TAGS, parse_range(spec)) == tag


def test_prerelease_only_when_asked() -> None:
    assert best_tag(["6.0.0-rc1"], parse_range("^6")) is None
    assert best_tag(["6.0.0-rc1"], parse_range(">=6.0.0-rc0")) == "6.0.0-rc1"


def test_bad_range() -> None:
    with pytest.raises(UsageError, match="invalid version range"):
        parse_range(">=abc")


def test_latest_compatible() -> None:
    assert latest_compatible(TAGS, "5.0.0") == "5.2.0"
    assert latest_compatible(TAGS, "5.1.5") == "5.2.0"
    assert latest_compatible(TAGS, "4.3.0") is None
    assert latest_compatible(["0.4.0"], "0.4.0") == "0.4.0"


ENTRIES = {
    n: SimpleNamespace(name=n, registry="reg:5000", repository=f"falco/{n}")
    for n in ("falco-rules", "container", "k8saudit", "k8saudit-eks", "json", "other-rules")
}


def test_parse_artifact_ref_index_and_full() -> None:
    aref = parse_artifact_ref("falco-rules:^5", ENTRIES.get)
    assert aref.ref.name == "reg:5000/falco/falco-rules" and aref.ref.range == "^5"
    assert aref.entry is ENTRIES["falco-rules"]
    assert str(parse_artifact_ref("falco-rules", ENTRIES.get).ref).endswith(":latest")
    full = parse_artifact_ref("ghcr.io/x/y:1", ENTRIES.get)
    assert full.entry is None and full.ref.tag == "1"
    with pytest.raises(NotFoundError, match="cannot find nope among the configured indexes"):
        parse_artifact_ref("nope:1", ENTRIES.get)


def test_pin_range_against_tags() -> None:
    aref = parse_artifact_ref("falco-rules:~5.1", ENTRIES.get)
    assert pin(aref, lambda repo: TAGS).tag == "5.1.3"
    with pytest.raises(NotFoundError, match=r"no tag of .* matches '\^9'"):
        pin(parse_artifact_ref("falco-rules:^9", ENTRIES.get), lambda repo: TAGS)


class World:
    """A registry of artifacts for the resolver: repo -> {tag: (version, deps)}."""

    def __init__(self, repos: dict[str, dict[str, tuple[Dependency, ...]]]) -> None:
        self.repos = repos
        self.fetched: list[str] = []

    def list_tags(self, repo: str) -> list[str]:
        return list(self.repos[repo.rsplit("/", 1)[-1]])

    def fetch(self, aref: ArtifactRef) -> tuple[str, str, tuple[Dependency, ...], str]:
        name = aref.ref.repository.rsplit("/", 1)[-1]
        self.fetched.append(f"{name}:{aref.ref.tag}")
        return (
            name,
            str(aref.ref.tag),
            self.repos[name][str(aref.ref.tag)],
            f"{name}:{aref.ref.tag}",
        )

    def root(self, name: str, version: str) -> Node[str]:
        return Node(
            name,
            version,
            self.repos[name][version],
            f"{name}:{version}",
            ["command line"],
            from_user=True,
        )


def test_latest_compatible_dependency_and_order() -> None:
    world = World(
        {
            "falco-rules": {"5.0.0": (Dependency("container", "0.4.0"),)},
            "container": {"0.4.0": (), "0.4.2": (), "0.5.0": (), "1.0.0": ()},
        }
    )
    nodes = resolve_dependencies(
        [world.root("falco-rules", "5.0.0")],
        fetch=world.fetch,
        lookup=ENTRIES.get,
        list_tags=world.list_tags,
    )
    assert [n.label for n in nodes] == ["container:0.5.0", "falco-rules:5.0.0"]
    assert nodes[0].requested_by == ["falco-rules:5.0.0"]


def test_installed_dependency_is_kept() -> None:
    world = World(
        {
            "falco-rules": {"5.0.0": (Dependency("container", "0.4.0"),)},
            "container": {"0.4.0": (), "0.5.0": ()},
        }
    )
    nodes = resolve_dependencies(
        [world.root("falco-rules", "5.0.0")],
        fetch=world.fetch,
        lookup=ENTRIES.get,
        list_tags=world.list_tags,
        installed={"container": "0.4.1"},
    )
    assert [n.label for n in nodes] == ["falco-rules:5.0.0"]
    assert world.fetched == []


def test_alternative_already_chosen_satisfies() -> None:
    world = World(
        {
            "other-rules": {
                "1.0.0": (Dependency("k8saudit", "0.11.0", (Dependency("k8saudit-eks", "0.7.0"),)),)
            },
            "k8saudit-eks": {"0.7.2": ()},
            "k8saudit": {"0.11.0": ()},
        }
    )
    roots = [world.root("other-rules", "1.0.0"), world.root("k8saudit-eks", "0.7.2")]
    nodes = resolve_dependencies(
        roots, fetch=world.fetch, lookup=ENTRIES.get, list_tags=world.list_tags
    )
    assert sorted(n.name for n in nodes) == ["k8saudit-eks", "other-rules"]
    assert [n.name for n in nodes].index("k8saudit-eks") < [n.name for n in nodes].index(
        "other-rules"
    )


def test_conflict_names_both_requirers() -> None:
    world = World(
        {
            "falco-rules": {"5.0.0": (Dependency("json", "1.0.0"),)},
            "other-rules": {"1.0.0": (Dependency("json", "2.0.0"),)},
            "json": {"1.2.0": (), "2.1.0": ()},
        }
    )
    roots = [world.root("falco-rules", "5.0.0"), world.root("other-rules", "1.0.0")]
    with pytest.raises(DependencyError) as err:
        resolve_dependencies(
            roots, fetch=world.fetch, lookup=ENTRIES.get, list_tags=world.list_tags
        )
    text = err.value.one_line()
    assert "other-rules:1.0.0" in text and "falco-rules:5.0.0" in text


def test_dependency_bumped_within_major() -> None:
    world = World(
        {
            "falco-rules": {"5.0.0": (Dependency("json", "1.0.0"),)},
            "other-rules": {"1.0.0": (Dependency("json", "1.3.0"),)},
            "json": {"1.2.0": (), "1.3.0": ()},
        }
    )
    roots = [world.root("falco-rules", "5.0.0"), world.root("other-rules", "1.0.0")]
    nodes = resolve_dependencies(
        roots, fetch=world.fetch, lookup=ENTRIES.get, list_tags=world.list_tags
    )
    assert next(n.label for n in nodes) == "json:1.3.0"


def test_missing_dependency_names_requirer() -> None:
    world = World(
        {"falco-rules": {"5.0.0": (Dependency("container", "2.0.0"),)}, "container": {"0.4.0": ()}}
    )
    with pytest.raises(NotFoundError, match=r"falco-rules:5\.0\.0 depends on container>=2\.0\.0"):
        resolve_dependencies(
            [world.root("falco-rules", "5.0.0")],
            fetch=world.fetch,
            lookup=ENTRIES.get,
            list_tags=world.list_tags,
        )
