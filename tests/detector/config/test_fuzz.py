"""The falco.yaml loader on arbitrary input: only the project's own errors, in bounded time."""

from __future__ import annotations

import string
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.config import load_config
from falcoctl_py.errors import FalcoctlPyError

KEYS = ["rules_files", "webserver", "listen_port", "engine", "kind", "buf_size_preset",
        "append_output", "match", "extra_fields", "config_files", "strategy", "plugins",
        "name", "library_path", "init_config", "outputs_queue", "capacity", "priority",
        "syscall_event_drops", "actions", "rules", "disable", "static_fields", "metrics",
        "artifact", "follow", "json_output", "x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(string.printable, max_size=20), st.sampled_from(KEYS))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=30)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def _check(tmp: Path, text: str, overrides: list[str]) -> None:
    f = tmp / "falco.yaml"
    f.write_text(text)
    start = time.monotonic()
    try:
        load_config(path=f, overrides=overrides, env={"X": "1"}, warn=lambda _: None)
    except FalcoctlPyError as err:
        assert "\n" not in err.one_line()
    assert time.monotonic() - start < 5


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_structured_documents(tmp_path: Path, doc: dict[str, Any]) -> None:
    _check(tmp_path, yaml.safe_dump(doc), [])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(string.printable, max_size=200),
       option=st.text(string.printable.replace("\n", ""), max_size=40))
def test_any_text_and_any_option(tmp_path: Path, text: str, option: str) -> None:
    _check(tmp_path, text, [option])
