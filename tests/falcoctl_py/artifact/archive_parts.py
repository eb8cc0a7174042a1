"""Hand-built hostile tar.gz layers: huge PAX / GNU long-name headers, bombs, cut trailers."""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

HUGE = 2 * 1024 * 1024 * 1024  # 2 GiB of header data


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def header(name: str, kind: bytes, size: int) -> bytes:
    """One ustar header block (checksum computed)."""
    block = bytearray(512)
    block[0:100] = name.encode().ljust(100, b"\0")
    block[100:108] = _octal(0o644, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = f"{sum(block):06o}".encode() + b"\0 "
    return bytes(block)


def huge_header_layer(path: Path, kind: bytes) -> Path:
    """A ~2 MB gzip layer whose first entry is a 2 GiB PAX (``x``) or GNU long-name (``L``)
    header, then a small rules file: written in chunks, never held in memory."""
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        out.write(gz.compress(header("././@PaxHeader" if kind == b"x" else "././@LongLink",
                                     kind, HUGE)))
        if kind == b"x":
            prefix = f"{HUGE} comment=".encode()
            out.write(gz.compress(prefix))
            left = HUGE - len(prefix) - 1
        else:
            left = HUGE - 1
        chunk = b"a" * (1 << 20)
        while left:
            n = min(left, len(chunk))
            out.write(gz.compress(chunk[:n]))
            left -= n
        out.write(gz.compress(b"\n" if kind == b"x" else b"\0"))
        body = b"- list: x\n  items: []\n"
        out.write(gz.compress(header("rules.yaml", tarfile.REGTYPE, len(body))))
        out.write(gz.compress(body.ljust(512, b"\0") + bytes(1024)))
        out.write(gz.flush())
    return path


def many_files_layer(path: Path, count: int, size: int) -> Path:
    """``count`` files of ``size`` zero bytes: tiny compressed, huge once written."""
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(size + (-size) % 512)  # the data and its padding to a block
    with open(path, "wb") as out:
        for i in range(count):
            out.write(gz.compress(header(f"f{i:05d}.bin", tarfile.REGTYPE, size)))
            out.write(gz.compress(zeros))
        out.write(gz.compress(bytes(1024)))
        out.write(gz.flush())
    return path


def without_trailer(data: bytes) -> bytes:
    """A gzip stream cut before its 8-byte trailer (CRC32 and length)."""
    return data[:-8]
