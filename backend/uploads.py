"""Checks on uploaded images and ImageFolder zips, before anything is stored.

The format comes from the bytes (PIL), never from the file name or the client's content
type. An image's size is read from its header and refused before any pixel is decoded, so a
small file that would decode to gigabytes (a decompression bomb) costs nothing; then the
image is fully decoded once, so a truncated or corrupt file is refused now rather than
failing a job later. Decoding takes width x height x 4 bytes, so at most `decode_concurrency`
images are decoded at once, and the freed memory is handed back to the system after a large one.
The size reported is the upright one (EXIF orientation applied), as the worker decodes it.

A zip is refused by its directory first (declared sizes and ratios against the budget), then
its members are read under the same budget of bytes and time (`vitscope.contracts.archives`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import re
import threading
import zipfile
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image, UnidentifiedImageError

from backend.errors import ApiError
from vitscope.contracts.archives import (
    MAX_ZIP_MEMBERS,
    ArchiveBudget,
    ArchiveBudgetError,
    Unpacker,
    check_declared,
    class_of,
    image_members,
)

TRANSPOSED = {5, 6, 7, 8}
"""EXIF orientations that turn the picture a quarter: its upright width is the stored height."""
TRIM_AFTER_BYTES = 16 << 20
"""A decode larger than this hands freed memory back to the system (malloc_trim) afterwards."""

CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
"""Accepted formats (PIL names) and their content types."""

_ACCEPTED = "PNG, JPEG, WebP, BMP, GIF or TIFF"


@dataclass(frozen=True)
class ImageInfo:
    """What an accepted image is: its size in pixels and its format (PIL name, e.g. `PNG`)."""

    width: int
    height: int
    format: str


@dataclass(frozen=True)
class ArchiveInfo:
    """What an accepted ImageFolder zip holds: the number of images and the class folder names."""

    images: int
    classes: list[str]


def inspect_image(
    data: bytes, max_pixels: int, name: str = "the file", decode: bool = True, concurrency: int = 2
) -> ImageInfo:
    """Return the upright size and the format of an encoded image; raise `ApiError` (4xx) if it is not acceptable.

    With `decode=False` only the header is checked (zip members, which the worker decodes); else
    at most `concurrency` images are decoded at once in this process.
    """
    if not data:
        raise ApiError(400, f"{name} is empty (0 bytes): upload a {_ACCEPTED} image")
    try:
        image = Image.open(io.BytesIO(data), formats=list(CONTENT_TYPES))
    except UnidentifiedImageError as exc:
        raise ApiError(415, f"{name} is not an image vitscope can read: upload a {_ACCEPTED} image") from exc
    except Image.DecompressionBombError as exc:
        # PIL refuses far-too-large headers itself; its message carries the pixel count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = _mp(int(found.group(1))) if found else "too many pixels"
        raise ApiError(413, f"{name} is {size}; the limit is {_mp(max_pixels)}: downscale it first") from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ApiError(
                413,
                f"{name} is {width}×{height} pixels ({_mp(width * height)}); the limit is {_mp(max_pixels)}: "
                "downscale it first",
            )
        info = ImageInfo(width, height, str(image.format))
    # the orientation is read from the decoded image: PIL decodes a whole PNG to find its eXIf chunk
    if decode and _decode(data, name, concurrency, large=width * height * 4 > TRIM_AFTER_BYTES) in TRANSPOSED:
        info = ImageInfo(height, width, info.format)
    return info


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112) or 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a broken EXIF block: shown as stored
        return 1


def _decode(data: bytes, name: str, concurrency: int, large: bool) -> int:
    """Decode the image once (at most `concurrency` at a time); return its EXIF orientation."""
    try:
        with _decode_slots(concurrency):
            return _load(data, name)
    finally:
        if large:  # the pixels are freed by now (they lived in _load only)
            _trim()


def _load(data: bytes, name: str) -> int:
    try:
        with Image.open(io.BytesIO(data), formats=list(CONTENT_TYPES)) as image:
            image.load()
            return _orientation(image)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ApiError(422, f"{name} is truncated or corrupt ({exc}): upload the complete file") from None


@cache
def _decode_slots(concurrency: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(concurrency)


@cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def _trim() -> None:
    # glibc keeps freed decode buffers in its arenas (one per thread): give them back to the system
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def inspect_archive(
    data: bytes, max_pixels: int, max_member_bytes: int, budget: ArchiveBudget | None = None
) -> ArchiveInfo:
    """Return what an ImageFolder zip (`<class>/<image>`) holds; raise `ApiError` (4xx) if it is not one.

    Every image member's header is checked (format, pixel count) while unpacking under `budget`
    (413 past it); members are decoded by the worker.
    """
    budget = budget or ArchiveBudget(total_bytes=1_000_000_000, ratio=200.0, seconds=5.0)
    if not data:
        raise ApiError(400, "the file is empty (0 bytes): upload a zip with one folder per class")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ApiError(415, "the file is not a zip archive: upload a zip with one folder per class") from exc
    with archive:
        members = image_members(archive)
        if not members:
            raise ApiError(422, "the zip has no images in class folders (expected <class>/<image>.png)")
        if len(members) > MAX_ZIP_MEMBERS:
            raise ApiError(413, f"the zip has {len(members)} images; at most {MAX_ZIP_MEMBERS} are accepted")
        for member in members:
            if member.file_size > max_member_bytes:
                raise ApiError(
                    413,
                    f"zip member {member.filename!r} is {member.file_size} bytes; the limit is {max_member_bytes}",
                )
        try:
            check_declared(members, budget)
            unpacker = Unpacker(budget)
            for member in members:
                _check_member(archive, member, max_pixels, unpacker)
        except ArchiveBudgetError as exc:
            raise ApiError(413, str(exc)) from exc
    classes = sorted({class_of(m) for m in members})
    return ArchiveInfo(len(members), classes)


def _check_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, max_pixels: int, unpacker: Unpacker
) -> None:
    try:
        data = unpacker.read(archive, member)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ApiError(422, f"zip member {member.filename!r} cannot be read ({exc})") from exc
    inspect_image(data, max_pixels, name=f"zip member {member.filename!r}", decode=False)


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"
