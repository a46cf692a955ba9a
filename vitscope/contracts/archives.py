"""The ImageFolder zip rule and the unpacking budget (torch-free), shared by the upload check and
the worker's reader."""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass

from vitscope.contracts.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
MAX_ZIP_MEMBERS = 20_000


def image_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Return the zip's image files that sit in a class folder (`<class>/<image>.png`), by name."""
    members = [
        m
        for m in archive.infolist()
        if not m.is_dir()
        and m.filename.lower().endswith(IMAGE_SUFFIXES)
        and "__MACOSX" not in m.filename
        and len(m.filename.strip("/").split("/")) >= 2
    ]
    return sorted(members, key=lambda m: m.filename)


def class_of(member: zipfile.ZipInfo) -> str:
    """The class folder a member sits in (its parent folder's name)."""
    return member.filename.strip("/").split("/")[-2]


RATIO_FLOOR_BYTES = 1 << 20
"""Members smaller than this are exempt from the ratio budget (a small flat BMP compresses well)."""
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class ArchiveBudget:
    """What unpacking one zip may cost: `total_bytes` decompressed over all members, a
    decompressed/compressed `ratio` per member (from 1 MiB up) and `seconds` of work."""

    total_bytes: int
    ratio: float
    seconds: float


class ArchiveBudgetError(UserError):
    """A zip whose unpacking would exceed its budget; the message names the limit."""


def check_declared(members: list[zipfile.ZipInfo], budget: ArchiveBudget) -> None:
    """Refuse a zip by its directory alone, before anything is decompressed: the declared sizes
    exceed the total budget, or a member's declared ratio exceeds the ratio budget (a bomb)."""
    total = sum(m.file_size for m in members)
    if total > budget.total_bytes:
        raise ArchiveBudgetError(
            f"the zip's members unpack to {total} bytes; the limit is {budget.total_bytes}"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size >= RATIO_FLOOR_BYTES and ratio > budget.ratio:
            raise ArchiveBudgetError(
                f"zip member {member.filename!r} unpacks {ratio:.0f} times its compressed size; "
                f"the limit is {budget.ratio:g} (a decompression bomb?)"
            )


class Unpacker:
    """Reads members of one zip under one budget: the bytes really produced and the time spent
    count across every read, so a member whose directory entry lies still stops the work."""

    def __init__(self, budget: ArchiveBudget) -> None:
        self.budget = budget
        self.produced = 0
        self.deadline = time.monotonic() + budget.seconds

    def read(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
        """Return the member's bytes; raise `ArchiveBudgetError` past the budget (zipfile errors pass)."""
        parts: list[bytes] = []
        with archive.open(member) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                self.produced += len(chunk)
                parts.append(chunk)
                self._check(member)
        return b"".join(parts)

    def _check(self, member: zipfile.ZipInfo) -> None:
        if self.produced > self.budget.total_bytes:
            raise ArchiveBudgetError(
                f"the zip's members unpack to more than {self.budget.total_bytes} bytes (at {member.filename!r})"
            )
        if time.monotonic() > self.deadline:
            raise ArchiveBudgetError(
                f"unpacking the zip took longer than {self.budget.seconds:g} s (at {member.filename!r}): "
                "upload fewer or smaller images"
            )
