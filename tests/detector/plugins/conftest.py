"""The test plugins: the C plugin built with gcc, a Python plugin installed as an entry point."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.realparts import need_binary

DATA = Path(__file__).parent / "data"


def build_plugin(name: str, out_dir: Path, *defines: str) -> Path:
    """Compile data/<name>.c into ``out_dir``/lib<name>.so (gcc, warnings as errors)."""
    gcc = need_binary("gcc")
    lib = out_dir / f"lib{name}.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", *defines, "-o",
                    str(lib), str(DATA / f"{name}.c")], check=True, capture_output=True)
    return lib


def build_counter(out_dir: Path, *defines: str) -> Path:
    """Compile data/counter.c into a shared library."""
    return build_plugin("counter", out_dir, *defines)


@pytest.fixture(scope="session")
def counter_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_counter(tmp_path_factory.mktemp("plugin"))


def install_python_plugin(site: Path) -> Path:
    """Make ``site`` hold data/pyticker.py and a dist-info declaring its entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "pyticker.py").write_text((DATA / "pyticker.py").read_text())
    dist = site / "pyticker-0.3.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pyticker\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text("[falcoctl_py.plugins]\nticker = pyticker:Ticker\n")
    return site
