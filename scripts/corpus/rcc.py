"""Reader for Qt resource bundles (.rcc, format versions 1-3), enough to list and extract files."""

from __future__ import annotations

import struct
import zlib
from typing import Iterator

_COMPRESSED, _DIRECTORY, _ZSTD = 1, 2, 4


def iter_rcc(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file in the bundle."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 14 if version == 1 else 22

    def name_at(off: int) -> str:
        (length,) = struct.unpack(">H", blob[names + off : names + off + 2])
        return blob[names + off + 6 : names + off + 6 + 2 * length].decode("utf-16-be")

    def walk(node: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + node * node_size
        name_off, flags = struct.unpack(">IH", blob[base : base + 6])
        name = name_at(name_off) if node else ""
        path = f"{prefix}/{name}" if prefix else name
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        (off,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + off : data + off + 4])
        payload = blob[data + off + 4 : data + off + 4 + size]
        if flags & _ZSTD:
            return  # no zstd decoder in the standard library; such entries are skipped
        if flags & _COMPRESSED:
            payload = zlib.decompress(payload[4:])  # qCompress: 4-byte length, then zlib
        yield path, payload

    yield from walk(0, "")
