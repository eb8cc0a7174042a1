"""Driver preparation: checks with fixes, an idempotent install, printenv, cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detector import driver
from detector.errors import DetectorError
from tests.realparts import need_bpf, need_root


def test_check_on_the_prepared_machine() -> None:
    need_bpf()
    report = driver.check()
    names = [c.name for c in report.checks]
    assert names == ["privileges", "bpf", "btf", "tracefs", "kernel-headers", "bcc"]
    assert report.ok, [c for c in report.checks if not c.ok]


def test_check_reports_missing_headers_with_a_fix(tmp_path: Path) -> None:
    report = driver.check(root=str(tmp_path))
    headers = next(c for c in report.checks if c.name == "kernel-headers")
    btf = next(c for c in report.checks if c.name == "btf")
    assert not headers.ok and "driver install" in headers.fix
    assert not btf.ok and "CONFIG_DEBUG_INFO_BTF" in btf.fix
    assert not report.ok


def _fake_headers(root: Path) -> None:
    amd64 = root / "usr/src/linux-headers-6.1.0-9-amd64"
    (amd64 / "include").mkdir(parents=True)
    (amd64 / "Makefile").write_text("")
    (root / "usr/src/linux-headers-6.1.0-9-common").mkdir()


def test_install_links_idempotently_and_cleanup_removes_only_its_own(tmp_path: Path) -> None:
    need_root()
    _fake_headers(tmp_path)
    first = driver.install(root=str(tmp_path), release="6.99.0-test", packages=False)
    moddir = tmp_path / "lib/modules/6.99.0-test"
    assert os.readlink(moddir / "build") == str(tmp_path / "usr/src/linux-headers-6.1.0-9-amd64")
    assert os.readlink(moddir / "source") == str(
        tmp_path / "usr/src/linux-headers-6.1.0-9-common"
    )
    assert len(first.actions) == 3  # created the directory, two links
    again = driver.install(root=str(tmp_path), release="6.99.0-test", packages=False)
    assert again.actions == []
    keep = tmp_path / "lib/modules/6.99.0-test/extra"
    keep.write_text("mine")
    done = driver.cleanup(root=str(tmp_path))
    assert not (moddir / "build").is_symlink() and not (moddir / "source").is_symlink()
    assert keep.exists() and len(done.actions) == 2  # the directory is not empty: kept


def test_install_without_headers_says_what_to_install(tmp_path: Path) -> None:
    need_root()
    with pytest.raises(DetectorError) as err:
        driver.install(root=str(tmp_path), release="6.99.0-test", packages=False)
    assert "linux-headers-amd64" in err.value.hint


def test_real_install_is_idempotent() -> None:
    need_bpf()
    assert driver.install().actions == []


def test_printenv() -> None:
    env = driver.printenv().values
    assert env["KERNEL_RELEASE"] == os.uname().release
    assert env["DRIVER"] == "ebpf-bcc"
    if os.path.exists(driver.BTF_PATH):
        assert "-DOFF_TASK_REAL_PARENT=" in env["CLANG_FLAGS"]
