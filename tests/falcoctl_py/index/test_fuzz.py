"""Property tests: the index and falcoctl.yaml loaders raise only the project's own errors on
any input, each input within a bounded time (hypothesis's deadline)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcoctl_py.config import config_from_data, read_config_file
from falcoctl_py.errors import FalcoctlPyError
from falcoctl_py.index.model import parse_index

BOUNDED = settings(max_examples=300, deadline=dt.timedelta(seconds=2),
                   suppress_health_check=[HealthCheck.too_slow])

# pieces that make YAML interesting: nesting, anchors and aliases, tags, flow collections,
# multi-documents, odd scalars
PIECES = ["- ", "  ", "\n", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "!!str ",
          "!!python/object ", "? ", "---\n", "...\n", "|\n", "'", '"', "#", "name", "registry",
          "repository", "type", "signature", "cosign", "key", "maintainers", "keywords", "x",
          "ghcr.io", "org/repo", "../..", "/dev/zero", "9" * 50, "1e999", "~", "true", "\t",
          "indexes", "url", "artifact", "follow", "every", "registry", "auth", "basic", "\x00",
          "é", "%YAML 1.1\n", "<<: *a\n"]

yaml_texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["ghcr.io", "org/repo", "1h", "../x"]))
keys = st.sampled_from(["name", "type", "registry", "repository", "keywords", "maintainers",
                        "signature", "cosign", "key", "ignore-tlog", "sources", "indexes", "url",
                        "backend", "artifact", "follow", "every", "install", "refs",
                        "resolveDeps", "registry", "auth", "basic", "oauth", "driver", "x"])
trees: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)



def _section(**children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A mapping holding one of ``children`` (a loader stops at the first error, so one key at a
    time reaches every check), or any of them, or a random tree."""
    one = [st.fixed_dictionaries({k: v}) for k, v in children.items()]
    some = st.fixed_dictionaries({}, optional=children)
    return st.one_of(*one, some, trees)


# falcoctl.yaml's own shape, with random values at every level
config_trees = _section(
    indexes=st.lists(_section(name=scalars, url=scalars, backend=scalars), max_size=3),
    registry=_section(creds=_section(config=scalars),
                      auth=_section(basic=trees, oauth=trees, gcp=trees)),
    artifact=_section(allowedTypes=trees, noVerify=scalars, verify=trees,
                      install=_section(refs=trees, resolveDeps=scalars, rulesfilesDir=scalars),
                      follow=_section(every=scalars, cron=scalars, startupBehavior=scalars,
                                      tmpDir=scalars, refs=trees)),
    driver=_section(type=trees, repos=trees, name=scalars, version=scalars, hostRoot=scalars),
)
index_entries = st.lists(_section(
    name=scalars, type=scalars, registry=scalars, repository=scalars, keywords=trees,
    maintainers=st.lists(_section(name=scalars, email=scalars), max_size=2),
    signature=_section(cosign=_section(key=scalars, **{"ignore-tlog": scalars})),
), max_size=4)


def _index_only_own_errors(text: str | bytes) -> None:
    try:
        entries = parse_index(text, source="fuzz.yaml", index_name="f")
    except FalcoctlPyError as err:
        assert "\n" not in err.one_line()
        return
    assert isinstance(entries, list)


def _config_only_own_errors(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "falcoctl.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        try:
            config_from_data(read_config_file(path, create=False), env={}, path=path)
        except FalcoctlPyError as err:
            assert "\n" not in err.one_line()


@BOUNDED
@given(yaml_texts)
def test_index_loader_on_yaml_like_text(text: str) -> None:
    _index_only_own_errors(text)


@BOUNDED
@given(st.binary(max_size=300))
def test_index_loader_on_bytes(data: bytes) -> None:
    _index_only_own_errors(data)


@BOUNDED
@given(st.one_of(st.lists(trees, max_size=4), index_entries))
def test_index_loader_on_structured_entries(entries: list[Any]) -> None:
    _index_only_own_errors(yaml.safe_dump(entries, allow_unicode=True))


@BOUNDED
@given(yaml_texts)
def test_config_loader_on_yaml_like_text(text: str) -> None:
    _config_only_own_errors(text)


@BOUNDED
@given(st.one_of(trees, config_trees))
def test_config_loader_on_structured_content(tree: Any) -> None:
    _config_only_own_errors(yaml.safe_dump(tree, allow_unicode=True))
