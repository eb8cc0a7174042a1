"""Where an artifact's files live in a destination: generations behind one ``current`` link.

Inside a destination ``D`` (``/etc/falco``, a plugins folder, ...), for an artifact whose id is
``<id>`` (a hash of its reference):

    D/<file>                            -> .falcoctl-py/<id>/current/<file>   (relative link)
    D/.falcoctl-py/<id>/current         -> g-<tx>    the generation readers see
    D/.falcoctl-py/<id>/previous        -> g-<tx0>   the version kept for rollback (follow)
    D/.falcoctl-py/<id>/g-<tx>/<file>   the files of one version, written once

Switching versions is one ``rename`` of ``current``: whoever opens ``D/<file>`` resolves it at
that moment and reads one version's file, never half of a set (the scheme Kubernetes uses for
ConfigMap volumes, which Falco already follows). Paths stay where users and falco.yaml expect.

No archive entry may be named ``.falcoctl*`` (checked at extraction, :mod:`.archive`), so an
artifact can neither write into this working area nor imitate it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from pathlib import Path, PurePosixPath

from falcoctl_py.errors import InstallError, IntegrityError

WORK = ".falcoctl-py"
RESERVED = ".falcoctl"  # every archive entry component starting so is refused
CURRENT = "current"
PREVIOUS = "previous"
GENERATION_RE = re.compile(r"^g-[0-9]+-[0-9a-f]{12}$")
TMP_PREFIX = f"{WORK}-tmp-"


def artifact_id(key: str) -> str:
    """The folder name of the artifact ``key`` (its reference) in a destination."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def new_tx() -> str:
    """A transaction id: the pid (to tell a live owner) and a random part."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def box(dest: Path, key: str) -> Path:
    """The working folder of ``key`` in ``dest``."""
    return dest / WORK / artifact_id(key)


def reserved(part: str) -> bool:
    """True for a path component that belongs to the installer."""
    return part.startswith(RESERVED)


def check_rel(rel: object, *, where: str) -> str:
    """A safe relative path inside a destination (no ``..``, not absolute, not reserved)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise IntegrityError(f"{where}: unsafe path {rel!r}")
    path = PurePosixPath(rel)
    parts = path.parts
    if path.is_absolute() or any(p in ("..", ".", "") for p in parts) or rel != path.as_posix():
        raise IntegrityError(f"{where}: unsafe path {rel!r} (absolute or '..')")
    if any(reserved(p) for p in parts):
        raise IntegrityError(f"{where}: path {rel!r} uses the reserved name {RESERVED}*")
    return rel


def link_target(rel: str, key: str) -> str:
    """What ``D/<rel>`` points to: relative, so it holds in any mount of ``D``."""
    up = "../" * (len(PurePosixPath(rel).parts) - 1)
    return f"{up}{WORK}/{artifact_id(key)}/{CURRENT}/{rel}"


def real_dirs(top: Path, rel_dir: PurePosixPath | Path) -> Path:
    """Make ``top/rel_dir`` (folders 0755), refusing to go through any symbolic link."""
    current = top
    if current.is_symlink():
        raise InstallError(f"refusing to write through the symbolic link {current}")
    current.mkdir(mode=0o755, parents=True, exist_ok=True)
    for part in PurePosixPath(rel_dir).parts:
        current = current / part
        try:
            current.mkdir(mode=0o755)
            continue
        except FileExistsError:
            pass  # there already (or made by another thread just now): check what it is
        if not is_real_dir(current):
            raise InstallError(
                f"refusing to install through {current}: it is not a real directory",
                hint="remove that link or file from the destination directory",
            )
    return current


def is_real_dir(path: Path) -> bool:
    """A directory that is not a symbolic link."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def real_file(top: Path, rel: str) -> Path | None:
    """``top/rel`` when every component is a real directory and the last a regular file."""
    current = top
    parts = PurePosixPath(rel).parts
    for i, part in enumerate(parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return None
        last = i == len(parts) - 1
        if (last and not stat.S_ISREG(mode)) or (not last and not stat.S_ISDIR(mode)):
            return None
    return current


def replace_with_link(target: str, link: Path) -> None:
    """Point ``link`` at ``target`` with one rename (a reader never finds the path missing)."""
    tmp = link.parent / f"{TMP_PREFIX}{new_tx()}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_link(path: Path) -> str:
    """The target of a symbolic link, or '' when ``path`` is not one."""
    try:
        return os.readlink(path)
    except OSError:
        return ""


def owner_alive(name: str) -> bool:
    """True when the process whose pid starts ``name`` (after ``g-``) runs and is not us."""
    match = re.match(r"^g-([0-9]+)-", name)
    if match is None or int(match.group(1)) in (0, os.getpid()) or len(match.group(1)) > 9:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
