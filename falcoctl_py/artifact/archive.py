"""Safe tar.gz extraction (regular files and directories inside the destination), creation."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from falcoctl_py.errors import IntegrityError

DEFAULT_MAX_EXTRACTED = 1024 * 1024 * 1024  # 1 GiB in total
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class ExtractedFile:
    """A regular file written by :func:`extract_tar_gz`, relative to the destination."""

    path: str
    size: int
    sha256: str
    mode: int


def _safe_name(name: str, *, archive: str) -> PurePosixPath | None:
    """The member's relative path, or None for the archive root; raises on unsafe names."""
    if "\x00" in name or name.startswith("/") or "\\" in name:
        raise IntegrityError(f"{archive}: unsafe path {name!r} (absolute or odd characters)")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise IntegrityError(f"{archive}: unsafe path {name!r} (contains '..')")
    return PurePosixPath(*parts) if parts else None


def extract_tar_gz(
    archive: Path,
    dest: Path,
    *,
    max_total: int = DEFAULT_MAX_EXTRACTED,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[ExtractedFile]:
    """Extract a gzip tar into the empty directory ``dest``; refuse anything unsafe.

    Rejected: absolute paths, ``..``, symbolic and hard links, devices and fifos, more than
    ``max_total`` bytes once decompressed, more than ``max_entries`` entries. ``dest`` may hold
    partial output after an error: the caller owns it and throws it away.
    """
    where = archive.name
    files: list[ExtractedFile] = []
    total = 0
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > max_entries:
                    raise IntegrityError(f"{where}: more than {max_entries} entries")
                rel = _safe_name(member.name, archive=where)
                if member.issym() or member.islnk():
                    raise IntegrityError(
                        f"{where}: link entry {member.name!r} refused (links are never extracted)"
                    )
                if not (member.isreg() or member.isdir()):
                    raise IntegrityError(
                        f"{where}: entry {member.name!r} is not a regular file or directory"
                    )
                if rel is None:
                    continue
                target = dest.joinpath(*rel.parts)
                _check_parents(dest, target, where)
                if member.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                if total + member.size > max_total:
                    raise IntegrityError(
                        f"{where}: decompressed size over the limit of {max_total} bytes"
                    )
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise IntegrityError(f"{where}: cannot read entry {member.name!r}")
                mode = (member.mode & 0o755) | 0o644
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                written = 0
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(1 << 16):
                        written += len(chunk)
                        if total + written > max_total:
                            raise IntegrityError(
                                f"{where}: decompressed size over the limit of {max_total} bytes"
                            )
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(target, mode)
                total += written
                files.append(ExtractedFile(rel.as_posix(), written, digest.hexdigest(), mode))
    except FileExistsError as err:
        raise IntegrityError(f"{where}: duplicate entry {Path(err.filename).name!r}") from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise IntegrityError(f"{where}: not a valid tar.gz archive: {err}") from None
    return files


def _check_parents(dest: Path, target: Path, where: str) -> None:
    """Refuse to write through a symbolic link inside ``dest``."""
    current = dest
    for part in target.relative_to(dest).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise IntegrityError(f"{where}: path goes through a symbolic link {part!r}")


def create_tar_gz(files: list[tuple[str, bytes]]) -> bytes:
    """A reproducible gzip tar of regular files (name, content): mode 0644, uid 0, mtime 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def is_tar_gz(path: Path) -> bool:
    """True when ``path`` starts with the gzip magic and holds a tar stream."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return False
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            tar.next()
    except (tarfile.TarError, OSError, EOFError):
        return False
    return True


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, or '' when it is missing or not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ""
    if not stat.S_ISREG(st.st_mode):
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
