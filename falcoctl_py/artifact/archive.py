"""Safe tar.gz extraction (regular files and directories inside the destination), creation.

The tar stream is read here, header by header, rather than by :mod:`tarfile`'s iterator, so
that every cost is bounded before it is paid: a PAX or GNU long-name header larger than
``MAX_HEADER`` is refused from its size field (tarfile would read it whole into memory), every
header counts as an entry and its bytes count toward the total, the total is checked on each
chunk written, and the decompressed size may not exceed ``MAX_RATIO`` times the compressed
size (past a floor). The gzip stream is read to its end, so a missing trailer (a truncated
download) or a wrong CRC is refused. Peak memory is a few hundred KiB plus ``MAX_HEADER``.
"""

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
from typing import BinaryIO

from falcoctl_py.errors import IntegrityError

DEFAULT_MAX_EXTRACTED = 1024 * 1024 * 1024  # 1 GiB in total
DEFAULT_MAX_ENTRIES = 10_000
MAX_HEADER = 1024 * 1024  # a PAX or GNU long-name header
MAX_RATIO = 100  # decompressed / compressed bytes, ...
RATIO_FLOOR = 64 * 1024 * 1024  # ... once past this many decompressed bytes
RESERVED = ".falcoctl"  # the installer's working names (see falcoctl_py.artifact.layout)
_BLOCK = 512
_CHUNK = 1 << 16
_META_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
_LONG_TYPES = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}


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
    if any(p.startswith(RESERVED) for p in parts):
        raise IntegrityError(
            f"{archive}: entry {name!r} uses the installer's reserved name {RESERVED}*",
            hint="rename the file in the artifact; no artifact may ship such names",
        )
    return PurePosixPath(*parts) if parts else None


class _Budget:
    """Counts entries and decompressed bytes against the limits, as extraction goes."""

    def __init__(self, where: str, max_total: int, max_entries: int, compressed: int) -> None:
        self.where = where
        self.max_total = max_total
        self.max_entries = max_entries
        self.ratio_cap = max(RATIO_FLOOR, compressed * MAX_RATIO)
        self.entries = 0
        self.total = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise IntegrityError(f"{self.where}: more than {self.max_entries} entries")

    def spend(self, amount: int) -> None:
        self.total += amount
        if self.total > self.max_total:
            raise IntegrityError(
                f"{self.where}: decompressed size over the limit of {self.max_total} bytes"
            )
        if self.total > self.ratio_cap:
            raise IntegrityError(
                f"{self.where}: decompresses to more than {MAX_RATIO} times its size "
                f"({self.total} bytes so far): refused as a decompression bomb"
            )


class _TarStream:
    """Reads tar headers and data from a decompressed stream, within a budget."""

    def __init__(self, stream: BinaryIO, budget: _Budget) -> None:
        self.stream = stream
        self.budget = budget

    def read(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise IntegrityError(f"{self.budget.where}: the archive ends in the middle of an entry")
        self.budget.spend(size)
        return data

    def skip_padding(self, size: int) -> None:
        if size % _BLOCK:
            self.read(_BLOCK - size % _BLOCK)

    def next_member(self) -> tarfile.TarInfo | None:
        """The next file or directory header, PAX/GNU extensions applied; None at the end."""
        name: str | None = None
        size: int | None = None
        while True:
            block = self.stream.read(_BLOCK)
            if len(block) < _BLOCK or block == bytes(_BLOCK):
                self.budget.spend(len(block))
                return None
            self.budget.spend(_BLOCK)
            self.budget.entry()
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as err:
                raise IntegrityError(f"{self.budget.where}: bad tar header: {err}") from None
            if info.type not in _META_TYPES and info.type not in _LONG_TYPES:
                if name is not None:
                    info.name = name
                if size is not None:
                    info.size = size
                return info
            if info.size > MAX_HEADER:
                raise IntegrityError(
                    f"{self.budget.where}: a {_kind(info.type)} header of {info.size} bytes "
                    f"(the limit is {MAX_HEADER})"
                )
            data = self.read(info.size)
            self.skip_padding(info.size)
            if info.type == tarfile.GNUTYPE_LONGNAME:
                name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            elif info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                records = _pax_records(data, self.budget.where)
                name = records.get("path", name)
                if "size" in records:
                    if not records["size"].isdigit() or len(records["size"]) > 18:
                        raise IntegrityError(f"{self.budget.where}: bad PAX size")
                    size = int(records["size"])


def _kind(kind: bytes) -> str:
    return "GNU long-name" if kind in _LONG_TYPES else "PAX"


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    """``"<len> key=value\\n"`` records (POSIX pax extended header)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        length_text = data[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise IntegrityError(f"{where}: bad PAX header record")
        end = pos + int(length_text)
        record = data[space + 1 : end]
        if end > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise IntegrityError(f"{where}: bad PAX header record")
        key, value = record[:-1].split(b"=", 1)
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


def extract_tar_gz(
    archive: Path,
    dest: Path,
    *,
    max_total: int = DEFAULT_MAX_EXTRACTED,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[ExtractedFile]:
    """Extract a gzip tar into the empty directory ``dest``; refuse anything unsafe.

    Rejected: absolute paths, ``..``, reserved names, symbolic and hard links, devices and
    fifos, oversized headers, more than ``max_total`` bytes once decompressed (or a ratio past
    ``MAX_RATIO``), more than ``max_entries`` entries, a truncated or corrupt gzip stream.
    ``dest`` may hold partial output after an error: the caller owns it and throws it away.
    """
    where = archive.name
    files: list[ExtractedFile] = []
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(where, max_total, max_entries, archive.stat().st_size)
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            tar = _TarStream(stream, budget)  # type: ignore[arg-type]
            while (member := tar.next_member()) is not None:
                done = _extract_member(tar, member, dest, where)
                if done is not None:
                    files.append(done)
            while chunk := stream.read(_CHUNK):  # to the gzip trailer (CRC and length)
                budget.spend(len(chunk))
    except FileExistsError as err:
        raise IntegrityError(f"{where}: duplicate entry {Path(err.filename).name!r}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise IntegrityError(f"{where}: not a valid tar.gz archive: {err}") from None
    return files


def _extract_member(
    tar: _TarStream, member: tarfile.TarInfo, dest: Path, where: str
) -> ExtractedFile | None:
    """Write one file or directory under ``dest``; None for a directory."""
    rel = _safe_name(member.name, archive=where)
    if member.issym() or member.islnk():
        raise IntegrityError(
            f"{where}: link entry {member.name!r} refused (links are never extracted)"
        )
    if not (member.isreg() or member.isdir()) or member.type == tarfile.GNUTYPE_SPARSE:
        raise IntegrityError(f"{where}: entry {member.name!r} is not a regular file or directory")
    if member.isdir():
        if member.size:
            raise IntegrityError(f"{where}: directory entry {member.name!r} carries data")
        if rel is not None:
            target = dest.joinpath(*rel.parts)
            _check_parents(dest, target, where)
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
        return None
    if rel is None:
        raise IntegrityError(f"{where}: a file entry without a name")
    target = dest.joinpath(*rel.parts)
    _check_parents(dest, target, where)
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    mode = (member.mode & 0o755) | 0o644
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    left = member.size
    with os.fdopen(fd, "wb") as out:
        while left:
            chunk = tar.read(min(_CHUNK, left))
            left -= len(chunk)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    tar.skip_padding(member.size)
    os.chmod(target, mode)
    return ExtractedFile(rel.as_posix(), member.size, digest.hexdigest(), mode)


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
    """The hex sha256 of a file (through links), or '' when missing or not a regular file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    if not stat.S_ISREG(st.st_mode):
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
