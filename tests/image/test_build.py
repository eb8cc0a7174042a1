"""image/build.sh: the image's content key covers the build recipe, so a changed recipe rebuilds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.realparts import need

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "falcoctl_py", "detector", "image")


def _copy(dest: Path) -> Path:
    """The parts of the repository the image is built from, copied to ``dest``."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def _key(repo: Path, cache: Path) -> str:
    env = {**os.environ, "FALCOCTL_PY_IMAGE_CACHE": str(cache), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(repo / "image" / "build.sh"), "--key"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    assert len(key) == 16 and int(key, 16) >= 0, key
    return key


def test_the_content_key_changes_with_the_build_recipe_and_the_code(tmp_path: Path) -> None:
    need(shutil.which("sha256sum") is not None, "sha256sum (coreutils)")
    repo = _copy(tmp_path / "repo")
    cache = tmp_path / "cache"
    first = _key(repo, cache)
    assert _key(repo, cache) == first  # the same inputs, the same key
    assert not cache.exists()  # --key builds and caches nothing
    script = repo / "image" / "build.sh"
    script.write_text(script.read_text() + "# a change to the recipe\n")
    recipe_changed = _key(repo, cache)
    assert recipe_changed != first
    (repo / "detector" / "driver.py").write_text(
        (repo / "detector" / "driver.py").read_text() + "\n# a change to the code\n")
    assert _key(repo, cache) not in (first, recipe_changed)
