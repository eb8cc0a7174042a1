"""Hostile indexes and index URLs get nothing (issue 10, items 5, 7 and 9): bounded YAML in
fetched and cached copies, typed fields, credentials in URLs redacted, 0600 files, and no
Authorization header for another host."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from falcoctl_py.bounded import InputLimitError
from falcoctl_py.config import IndexRef, load_config
from falcoctl_py.errors import FalcoctlPyError, LocatedError, UsageError
from falcoctl_py.index.cache import (
    add_index,
    cache_config_path,
    cached_index_path,
    load_index_entries,
    store_in_cache,
)
from falcoctl_py.index.fetch import fetch_index
from falcoctl_py.index.model import parse_index
from falcoctl_py.signing.verify import load_key_ref
from tests.falcoctl_py.cli.clirun import run_config
from tests.falcoctl_py.oci.hostile import Reply, hostile_server
from tests.realparts import FileServer

GOOD = "- name: a\n  type: rulesfile\n  registry: ghcr.io\n  repository: org/a\n"
BILLION_LAUGHS = "- &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"- &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]\n" for i in range(1, 10)
)


def test_billion_laughs_index_is_refused_by_the_bounded_loader() -> None:
    with pytest.raises(InputLimitError, match="expands to more than") as err:
        parse_index(BILLION_LAUGHS, source="evil.yaml")
    assert err.value.one_line().startswith("evil.yaml: ")


@pytest.mark.parametrize("text", ["[" * 50_000, "- " * 5_000 + "x", "- &a [*a]\n"])
def test_deep_or_recursive_index_is_one_clear_error(text: str) -> None:
    with pytest.raises(FalcoctlPyError) as err:
        parse_index(text, source="deep.yaml")
    assert "deep.yaml" in err.value.one_line() and "\n" not in err.value.one_line()


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("repository", "../../../admin/delete?x=", "invalid repository"),
        ("repository", "Org/UPPER", "invalid repository"),
        ("registry", "evil.example/path", "invalid registry"),
        ("registry", "host:99999", "invalid registry"),
        ("registry", "user@host", "invalid registry"),
        ("name", "../x", "invalid entry name"),
        ("type", "{a: b}", "must be a string"),
    ],
)
def test_entry_fields_are_typed(field: str, value: str, needle: str) -> None:
    entry = {"name": "a", "type": "rulesfile", "registry": "ghcr.io", "repository": "org/a"}
    text = "\n".join(f"  {k}: {value if k == field else v}" for k, v in entry.items())
    with pytest.raises(LocatedError, match=needle) as err:
        parse_index("-" + text[1:] + "\n", source="i.yaml")
    assert err.value.line == 1


def test_a_key_path_to_a_device_is_refused_without_reading_it() -> None:
    entries = parse_index(GOOD + "  signature: {cosign: {key: /dev/zero}}\n", source="i.yaml")
    cosign = entries[0].signature.cosign if entries[0].signature else None
    assert cosign is not None and cosign.key == "/dev/zero"
    with pytest.raises(UsageError, match="not a regular file"):
        load_key_ref(cosign.key)  # what verification does with it: refused, nothing read


def test_a_file_index_that_is_a_device_is_refused(isolated_home: Path) -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        add_index(config_path=isolated_home / "falcoctl.yaml", name="z", url="file:///dev/zero")


def test_a_poisoned_cached_copy_is_not_loaded_and_is_fetched_again(
    isolated_home: Path, file_server: FileServer
) -> None:
    (file_server.root / "index.yaml").write_text(GOOD)
    ref = IndexRef("main", f"{file_server.url}/index.yaml", "http")
    store_in_cache(ref, BILLION_LAUGHS.encode())  # a copy poisoned on disk
    assert [e.name for e in load_index_entries(ref)] == ["a"]
    assert cached_index_path("main").read_text() == GOOD  # replaced by the good copy


def test_a_poisoned_cache_record_file_is_a_clear_error(isolated_home: Path) -> None:
    cache_config_path().parent.mkdir(parents=True)
    cache_config_path().write_text("configs: " + "[" * 10_000)
    with pytest.raises(InputLimitError, match="nested more than"):
        load_index_entries(IndexRef("main", "file:///nowhere.yaml"))



def test_index_url_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    with hostile_server(lambda *_: (200, {}, GOOD.encode())) as other:
        moved: Reply = (302, {"Location": f"{other.url}/index.yaml"}, b"")
        with hostile_server(lambda *_: moved) as origin:
            url = f"http://reader:s3cret@{origin.host}/index.yaml"
            _, entries = fetch_index(IndexRef("x", url))
        assert [e.name for e in entries] == ["a"]
        assert origin.with_credentials()  # the index server itself was given them
        assert other.seen and other.with_credentials() == []


def test_index_url_credentials_never_reach_httpx_debug_logs(
    caplog: pytest.LogCaptureFixture, file_server: FileServer
) -> None:
    (file_server.root / "index.yaml").write_text(GOOD)
    url = file_server.url.replace("http://", "http://reader:s3cret@") + "/index.yaml"
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        fetch_index(IndexRef("x", url))
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]
    assert any("index.yaml" in m for m in logged)
    assert not any("s3cret" in m for m in logged)


def test_index_list_redacts_and_files_are_0600(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, file_server: FileServer
) -> None:
    (file_server.root / "index.yaml").write_text(GOOD)
    config = isolated_home / "falcoctl.yaml"
    url = file_server.url.replace("http://", "http://reader:s3cret@") + "/index.yaml"
    run = run_config(capsys, config, "index", "add", "private", url)
    assert run.code == 0, run.stderr
    for args in (("index", "list"), ("index", "list", "-o", "json")):
        run = run_config(capsys, config, *args)
        assert run.code == 0 and "s3cret" not in run.stdout + run.stderr
        assert "***@127.0.0.1" in run.stdout
    urls = [i["url"] for i in json.loads(run.stdout)]
    assert any(u.startswith("http://***@127.0.0.1") for u in urls)
    assert "s3cret" not in repr(load_config(config, env={}))  # nor in a logged or traced model
    for path in (config, cache_config_path()):
        assert "s3cret" in path.read_text()  # stored for use...
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # ...readable by the owner only
