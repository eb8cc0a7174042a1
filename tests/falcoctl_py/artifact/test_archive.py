"""Safe extraction: only regular files and directories, inside the destination, bounded."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from falcoctl_py.artifact.archive import create_tar_gz, extract_tar_gz, file_sha256, is_tar_gz
from falcoctl_py.errors import IntegrityError
from tests.falcoctl_py.artifact_helpers import member, tar_gz


def _archive(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(tar_gz(members))
    return path


def test_extracts_files_and_dirs(tmp_path: Path) -> None:
    path = _archive(
        tmp_path,
        [
            member("rules.yaml", b"- rule: x\n"),
            member("sub", kind=tarfile.DIRTYPE),
            member("sub/lib.so", b"\x7fELF"),
        ],
    )
    files = extract_tar_gz(path, tmp_path / "out")
    assert [f.path for f in files] == ["rules.yaml", "sub/lib.so"]
    assert (tmp_path / "out/sub/lib.so").read_bytes() == b"\x7fELF"
    assert files[0].sha256 == file_sha256(tmp_path / "out/rules.yaml")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (member("/etc/passwd"), "absolute"),
        (member("../escape.yaml"), "'..'"),
        (member("a/../../escape.yaml"), "'..'"),
        (member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), "link entry"),
        (member("inner", kind=tarfile.SYMTYPE, linkname="rules.yaml"), "link entry"),
        (member("hard", kind=tarfile.LNKTYPE, linkname="rules.yaml"), "link entry"),
        (member("dev", kind=tarfile.CHRTYPE), "not a regular file"),
        (member("blk", kind=tarfile.BLKTYPE), "not a regular file"),
        (member("fifo", kind=tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_unsafe_entries_are_refused(
    tmp_path: Path, entry: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    path = _archive(tmp_path, [member("rules.yaml"), entry])
    with pytest.raises(IntegrityError, match=message):
        extract_tar_gz(path, tmp_path / "out")
    assert not (tmp_path / "escape.yaml").exists()


def test_size_bomb_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path, [member("zeros", b"\0" * (3 << 20))])
    assert path.stat().st_size < 20_000  # tiny compressed, large decompressed
    with pytest.raises(IntegrityError, match="decompressed size over the limit"):
        extract_tar_gz(path, tmp_path / "out", max_total=1 << 20)


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(IntegrityError, match=r"not a valid tar\.gz"):
        extract_tar_gz(path, tmp_path / "out")
    assert not is_tar_gz(path)


def test_created_archives_are_reproducible(tmp_path: Path) -> None:
    one = create_tar_gz([("falco_rules.yaml", b"- list: a\n")])
    assert one == create_tar_gz([("falco_rules.yaml", b"- list: a\n")])
    path = tmp_path / "r.tar.gz"
    path.write_bytes(one)
    assert is_tar_gz(path)
    files = extract_tar_gz(path, tmp_path / "out")
    assert (tmp_path / "out/falco_rules.yaml").read_bytes() == b"- list: a\n"
    assert files[0].mode == 0o644
