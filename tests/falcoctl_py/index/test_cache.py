"""Fetching indexes over real HTTP and from files, and falcoctl's local cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from falcoctl_py.config import IndexRef, load_config, save_indexes
from falcoctl_py.errors import LocatedError, NetworkError, NotFoundError, UsageError
from falcoctl_py.index.cache import (
    add_index,
    cache_config_path,
    cached_index_path,
    list_indexes,
    load_index_entries,
    read_cache_records,
    remove_indexes,
    update_indexes,
)
from falcoctl_py.index.fetch import fetch_index
from falcoctl_py.index.search import load_merged_index
from tests.realparts import FileServer


def index_text(*names: str, registry: str = "ghcr.io") -> str:
    return "".join(
        f"- name: {n}\n  type: rulesfile\n  registry: {registry}\n  repository: org/{n}\n"
        f"  keywords: [{n}]\n"
        for n in names
    )


def serve(server: FileServer, name: str, text: str) -> str:
    (server.root / name).write_text(text)
    return f"{server.url}/{name}"


def snapshot(*dirs: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in dirs if d.exists() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_fetch_over_http_and_from_file(file_server: FileServer, tmp_path: Path) -> None:
    url = serve(file_server, "index.yaml", index_text("a", "b"))
    _, entries = fetch_index(IndexRef("web", url))
    assert [e.name for e in entries] == ["a", "b"] and entries[0].index == "web"
    local = tmp_path / "local.yaml"
    local.write_text(index_text("c"))
    for ref in (IndexRef("f", f"file://{local}"), IndexRef("f", str(local), "file")):
        assert [e.name for e in fetch_index(ref)[1]] == ["c"]


def test_http_error_and_unreachable_are_network_errors(file_server: FileServer) -> None:
    with pytest.raises(NetworkError, match="HTTP 404") as err:
        fetch_index(IndexRef("x", f"{file_server.url}/missing.yaml"))
    assert err.value.status == 404
    file_server.stop()
    with pytest.raises(NetworkError, match="cannot fetch index"):
        fetch_index(IndexRef("x", f"{file_server.url}/index.yaml"))


def test_credentials_in_an_index_url_never_reach_errors(file_server: FileServer) -> None:
    url = file_server.url.replace("http://", "http://reader:s3cret@") + "/missing.yaml"
    with pytest.raises(NetworkError, match="HTTP 404") as err:
        fetch_index(IndexRef("x", url))
    assert "s3cret" not in err.value.one_line() and "***@127.0.0.1" in err.value.one_line()
    (file_server.root / "bad.yaml").write_text("- name: [unclosed\n")
    bad = url.replace("missing.yaml", "bad.yaml")
    with pytest.raises(LocatedError) as located:
        fetch_index(IndexRef("x", bad))
    assert "s3cret" not in located.value.one_line()
    file_server.stop()
    with pytest.raises(NetworkError) as down:
        fetch_index(IndexRef("x", url))
    assert "s3cret" not in down.value.one_line()
    assert down.value.__cause__ is None  # no chained error that could show the URL


def test_unsupported_backends_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not supported"):
        fetch_index(IndexRef("x", "s3://bucket/index.yaml"))
    with pytest.raises(UsageError, match="unsupported index backend"):
        fetch_index(IndexRef("x", "https://e/index.yaml", "ftp"))


def test_add_writes_cache_and_config(isolated_home: Path, file_server: FileServer) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    url = serve(file_server, "index.yaml", index_text("a", "b"))
    info = add_index(config_path=config_path, name="mine", url=url)
    assert info.entries == 2 and info.backend == "http"
    assert cache_config_path() == isolated_home / ".config" / "falcoctl" / "indexes.yaml"
    assert cached_index_path("mine").read_text() == index_text("a", "b")
    record = read_cache_records()[0]
    assert (record.name, record.url) == ("mine", url)
    assert len(record.added_timestamp) == len("2006-01-02 15:04:05")
    names = [i.name for i in load_config(config_path).indexes]
    assert names == ["falcosecurity", "mine"]


def test_add_and_remove_keep_the_config_files_comments(
    isolated_home: Path, file_server: FileServer
) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    config_path.write_text(
        "# managed by ops: do not drop this line\n"
        "indexes: []\n"
        "artifact:\n"
        "  allowedTypes: [rulesfile]  # plugins come from the image\n"
    )
    config_path.chmod(0o600)
    url = serve(file_server, "index.yaml", index_text("a"))
    add_index(config_path=config_path, name="mine", url=url)
    text = config_path.read_text()
    assert "# managed by ops: do not drop this line" in text
    assert "# plugins come from the image" in text and "allowedTypes" in text
    assert [i.name for i in load_config(config_path).indexes] == ["mine"]
    assert config_path.stat().st_mode & 0o777 == 0o600
    remove_indexes(config_path=config_path, names=["mine"])
    assert "# plugins come from the image" in config_path.read_text()
    assert load_config(config_path).indexes == []


def test_add_keeps_inline_comments_in_the_index_list_and_writes_no_empty_backend(
    isolated_home: Path, file_server: FileServer
) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    url = serve(file_server, "index.yaml", index_text("a"))
    config_path.write_text(
        "indexes:\n"
        "  - name: falcosecurity  # the upstream index\n"
        "    url: https://falcosecurity.github.io/falcoctl/index.yaml\n"
        f"  - name: mirror  # our mirror\n    url: {url}\n"
    )
    add_index(config_path=config_path, name="more", url=url)
    add_index(config_path=config_path, name="mirror", url=url + "?v=2")
    text = config_path.read_text()
    assert "# the upstream index" in text and "# our mirror" in text
    assert "backend: ''" not in text and "backend: \"\"" not in text
    data = yaml.safe_load(text)["indexes"]
    assert [i["name"] for i in data] == ["falcosecurity", "mirror", "more"]
    assert "backend" not in data[0] and data[1]["url"].endswith("?v=2")


def test_add_existing_name_updates_the_url(isolated_home: Path, file_server: FileServer) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    old = serve(file_server, "old.yaml", index_text("a"))
    new = serve(file_server, "new.yaml", index_text("z"))
    add_index(config_path=config_path, name="mine", url=old)
    add_index(config_path=config_path, name="mine", url=new)
    config = load_config(config_path)
    assert [(i.name, i.url) for i in config.indexes] == [
        ("falcosecurity", "https://falcosecurity.github.io/falcoctl/index.yaml"), ("mine", new)]
    assert [r.url for r in read_cache_records()] == [new]
    assert [e.name for e in load_merged_index(config, only="mine").entries()] == ["z"]


def test_malformed_index_writes_nothing(isolated_home: Path, file_server: FileServer) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    add_index(config_path=config_path, name="good",
              url=serve(file_server, "good.yaml", index_text("a")))
    before = snapshot(isolated_home)
    bad = serve(file_server, "bad.yaml", "- name: x\n  registry: [\n")
    with pytest.raises(LocatedError) as err:
        add_index(config_path=config_path, name="bad", url=bad)
    assert str(err.value).startswith(f"{bad}:3: invalid YAML")
    with pytest.raises(LocatedError):  # a good index turned bad: the cached copy is kept
        (file_server.root / "good.yaml").write_text("- name: [\n")
        update_indexes(config=load_config(config_path), names=["good"])
    assert snapshot(isolated_home) == before


def test_artifact_commands_use_the_cache(isolated_home: Path, file_server: FileServer) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    url = serve(file_server, "index.yaml", index_text("a"))
    add_index(config_path=config_path, name="mine", url=url)
    save_indexes(config_path, [IndexRef("mine", url)])
    file_server.stop()  # the cached copy is enough now
    merged = load_merged_index(load_config(config_path))
    assert [e.name for e in merged.entries()] == ["a"]


def test_uncached_index_is_fetched_and_cached(
    isolated_home: Path, file_server: FileServer
) -> None:
    url = serve(file_server, "index.yaml", index_text("a"))
    assert [e.name for e in load_index_entries(IndexRef("fresh", url))] == ["a"]
    assert cached_index_path("fresh").exists()
    # a configured URL that differs from the cached one is fetched again
    other = serve(file_server, "other.yaml", index_text("b"))
    assert [e.name for e in load_index_entries(IndexRef("fresh", other))] == ["b"]


def test_merge_follows_configuration_order(
    isolated_home: Path, file_server: FileServer
) -> None:
    one = serve(file_server, "one.yaml", index_text("a", "shared", registry="one.example"))
    two = serve(file_server, "two.yaml", index_text("shared", "z", registry="two.example"))
    config_path = isolated_home / "falcoctl.yaml"
    save_indexes(config_path, [IndexRef("one", one), IndexRef("two", two)])
    merged = load_merged_index(load_config(config_path))
    shared = merged.get("shared")
    assert shared is not None and (shared.index, shared.registry) == ("two", "two.example")
    save_indexes(config_path, [IndexRef("two", two), IndexRef("one", one)])
    shared = load_merged_index(load_config(config_path)).get("shared")
    assert shared is not None and shared.index == "one"


def test_list_shows_configured_and_cached(isolated_home: Path, file_server: FileServer) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    add_index(config_path=config_path, name="mine",
              url=serve(file_server, "index.yaml", index_text("a")))
    save_indexes(config_path, [IndexRef("falcosecurity",
                                        "https://falcosecurity.github.io/falcoctl/index.yaml")])
    infos = list_indexes(config=load_config(config_path))
    assert [(i.name, i.configured, i.cached) for i in infos] == [
        ("falcosecurity", True, False), ("mine", False, True)]


def test_update_and_remove(isolated_home: Path, file_server: FileServer) -> None:
    config_path = isolated_home / "falcoctl.yaml"
    url = serve(file_server, "index.yaml", index_text("a"))
    add_index(config_path=config_path, name="mine", url=url)
    (file_server.root / "index.yaml").write_text(index_text("a", "b"))
    [info] = update_indexes(config=load_config(config_path), names=["mine"])
    assert info.entries == 2
    assert "- name: b" in cached_index_path("mine").read_text()
    with pytest.raises(NotFoundError, match="'nope'"):
        remove_indexes(config_path=config_path, names=["mine", "nope"])
    assert cached_index_path("mine").exists()  # nothing removed on a bad name
    remove_indexes(config_path=config_path, names=["mine"])
    assert not cached_index_path("mine").exists()
    assert read_cache_records() == []
    assert [i["name"] for i in yaml.safe_load(config_path.read_text())["indexes"]] == [
        "falcosecurity"]
    with pytest.raises(NotFoundError):
        update_indexes(config=load_config(config_path), names=["mine"])


def test_index_names_cannot_escape_the_cache(isolated_home: Path, tmp_path: Path) -> None:
    local = tmp_path / "i.yaml"
    local.write_text(index_text("a"))
    with pytest.raises(UsageError, match="invalid index name"):
        add_index(config_path=isolated_home / "f.yaml", name="../evil", url=f"file://{local}")


def test_damaged_cached_copy_is_fetched_again(
    isolated_home: Path, file_server: FileServer
) -> None:
    url = serve(file_server, "index.yaml", index_text("a"))
    ref = IndexRef("mine", url)
    load_index_entries(ref)
    cached_index_path("mine").write_text("- name: [damaged\n")
    assert [e.name for e in load_index_entries(ref)] == ["a"]
    assert cached_index_path("mine").read_text() == index_text("a")
