"""Factories for upload bytes: real images in every accepted format, broken ones, zips."""

from __future__ import annotations

import bz2
import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (48, 32), seed: int = 0) -> bytes:
    """A real RGB image of `size` (width, height) encoded as `fmt` (a PIL format name)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def truncated_png() -> bytes:
    """A PNG cut short in the middle of its pixel data (the header still reads fine)."""
    data = image_bytes("PNG", (64, 64))
    return data[: len(data) // 2]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def header_only_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb, built cheaply)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def image_folder_zip(classes: dict[str, int], fmt: str = "PNG") -> bytes:
    """An ImageFolder zip: `classes` maps a folder name to its number of images."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, count in classes.items():
            for i in range(count):
                archive.writestr(f"{name}/{i}.{fmt.lower()}", image_bytes(fmt, (32, 32), seed=i))
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    """A zip with the given member names and bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def bzip2_bomb(members: int = 100, zeros: int = 19_900_000) -> bytes:
    """A zip of `members` bzip2 members, each a PNG header followed by `zeros` zero bytes (the CPU
    bomb of issue 15: 100 x 19.9 MB in about 48 kB). The payload is compressed once and written
    under every name, so building it costs half a second, not a minute."""
    payload = header_only_png(64, 64) + b"\x00" * zeros
    packed, crc = bz2.compress(payload, 9), zlib.crc32(payload)
    return raw_zip([(f"cls/{i}.png", packed, zipfile.ZIP_BZIP2, crc, len(payload)) for i in range(members)])


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip written byte by byte from compressed members: (name, data, method, crc, size).

    The declared size and CRC are taken as given, so a test can build a zip that lies.
    """
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, size in members:
        offset, encoded = out.tell(), name.encode()
        common = struct.pack("<HHHHIIIHH", 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0)
        out.write(struct.pack("<IH", 0x04034B50, 46) + common + encoded + data)
        central.write(
            struct.pack("<IHH", 0x02014B50, 46, 46) + common + struct.pack("<HHHII", 0, 0, 0, 0, offset)
        )
        central.write(encoded)
    start, directory = out.tell(), central.getvalue()
    out.write(directory)
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), start, 0)
    )
    return out.getvalue()
