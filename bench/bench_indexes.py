"""Index handling: parsing, cached vs fetched loads, and search over a 1000-entry index; the
cost of bounded loading and field validation on a falcosecurity-sized index.

Baselines: PyYAML's ``safe_load`` of the same bytes (plain, and with libyaml's loader: what any
index reader must at least do). Figures are ratios measured in the same run (a shared machine).
"""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from falcoctl_py.bounded import safe_load_yaml
from falcoctl_py.config import config_from_data
from falcoctl_py.index.cache import store_in_cache
from falcoctl_py.index.model import parse_index
from falcoctl_py.index.search import load_merged_index

ENTRIES = 1000


def _index_text() -> str:
    return "".join(
        f"- name: artifact-{i}\n  type: {'plugin' if i % 3 else 'rulesfile'}\n"
        f"  registry: ghcr.io\n  repository: org/artifacts/artifact-{i}\n"
        f"  description: Artifact number {i} of the benchmark index\n"
        f"  keywords: [bench, kw{i % 50}]\n  license: apache-2.0\n"
        f"  maintainers: [{{name: Someone, email: someone@example.org}}]\n"
        f"  sources: [https://example.org/src/{i}]\n"
        for i in range(ENTRIES)
    )


FALCOSECURITY_LIKE = 130  # about the size of falcosecurity's index.yaml (rules and plugins)


def _falcosecurity_like() -> str:
    """An index shaped like falcosecurity's: rulesfiles and plugins, cosign signature data,
    maintainers, keywords and sources on every entry."""
    out = []
    for i in range(FALCOSECURITY_LIKE):
        kind = "plugin" if i % 2 else "rulesfile"
        repo = f"falcosecurity/plugins/plugin/p{i}" if i % 2 else f"falcosecurity/rules/r{i}"
        out.append(
            f"- name: artifact{i}{'-rules' if kind == 'rulesfile' else ''}\n"
            f"  type: {kind}\n  registry: ghcr.io\n  repository: {repo}\n"
            f"  description: The artifact number {i}, described in one sentence as upstream\n"
            f"  home: https://github.com/falcosecurity/plugins/tree/main/plugins/p{i}\n"
            f"  keywords:\n    - audit\n    - kw{i}\n    - kubernetes\n"
            f"  license: Apache-2.0\n"
            f"  maintainers:\n    - email: cncf-falco-dev@lists.cncf.io\n"
            f"      name: The Falco Authors\n"
            f"  sources:\n    - https://github.com/falcosecurity/plugins/tree/main/plugins/p{i}\n"
            f"  signature:\n    cosign:\n"
            f"      certificate-oidc-issuer: https://token.actions.githubusercontent.com\n"
            f"      certificate-identity-regexp: https://github.com/falcosecurity/plugins/\n"
        )
    return "".join(out)


def _bounded_cost() -> None:
    """Bounded loading and validation vs plain ``yaml.safe_load`` on a falcosecurity-like
    index."""
    text = _falcosecurity_like()
    data = text.encode()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    plain = _best(lambda: yaml.safe_load(text), repeat=7)
    clib = _best(lambda: yaml.load(text, Loader=loader), repeat=7)
    bounded = _best(lambda: safe_load_yaml(data, where="bench"), repeat=7)
    checked = _best(lambda: parse_index(data, source="bench"), repeat=7)
    print(f"falcosecurity-like index: {FALCOSECURITY_LIKE} entries, {len(data) / 1024:.0f} KiB")
    print(f"  yaml.safe_load (plain, baseline): {plain * 1000:.2f} ms")
    print(f"  yaml.load with {loader.__name__}: {clib * 1000:.2f} ms "
          f"({clib / plain:.2f}x baseline)")
    print(f"  safe_load_yaml (bounded: size, depth, aliases, expansion): {bounded * 1000:.2f} ms "
          f"({bounded / plain:.2f}x baseline, {bounded / clib:.2f}x {loader.__name__})")
    print(f"  parse_index (bounded + typed, validated fields): {checked * 1000:.2f} ms "
          f"({checked / plain:.2f}x baseline, {checked / clib:.2f}x {loader.__name__})")


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    _bounded_cost()
    text = _index_text()
    data = text.encode()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    baseline = _best(lambda: yaml.load(text, Loader=loader))
    parse = _best(lambda: parse_index(data, source="bench"))
    print(f"index of {ENTRIES} entries, {len(data) / 1024:.0f} KiB")
    print(f"yaml.load with {loader.__name__} (baseline): {baseline * 1000:.1f} ms")
    print(f"parse_index (checked, with lines): {parse * 1000:.1f} ms "
          f"({parse / baseline:.2f}x baseline)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "index.yaml").write_bytes(data)
        handler = functools.partial(_Quiet, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/index.yaml"
        old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(root / "home")
        try:
            fetched_cfg = config_from_data({"indexes": [{"name": "f", "url": url}]}, env={})
            cached_cfg = config_from_data({"indexes": [{"name": "c", "url": url}]}, env={})
            store_in_cache(cached_cfg.indexes[0], data)

            def fetched() -> object:
                (root / "home" / ".config" / "falcoctl" / "indexes" / "f.yaml").unlink(
                    missing_ok=True)
                return load_merged_index(fetched_cfg)

            fetch_time = _best(fetched)
            cache_time = _best(lambda: load_merged_index(cached_cfg))
            merged = load_merged_index(cached_cfg)
            search_time = _best(lambda: merged.search(["artifact-42", "kw7"]))
        finally:
            server.shutdown()
            server.server_close()
            if old_home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = old_home
    print(f"load from loopback HTTP (+cache write): {fetch_time * 1000:.1f} ms "
          f"({fetch_time / baseline:.2f}x baseline)")
    print(f"load from cache: {cache_time * 1000:.1f} ms ({cache_time / baseline:.2f}x baseline)")
    print(f"search 2 keywords over {ENTRIES} entries: {search_time * 1000:.1f} ms "
          f"({search_time / baseline:.2f}x baseline)")


if __name__ == "__main__":
    main()
