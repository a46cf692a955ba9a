"""Checks on uploaded images and ImageFolder zips, before anything is stored.

The format comes from the bytes (PIL), never from the file name or the client's content
type. An image's size is read from its header and refused before any pixel is decoded, so a
small file that would decode to gigabytes (a decompression bomb) costs nothing; then the
image is fully decoded once, so a truncated or corrupt file is refused now rather than
failing a job later.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from backend.errors import ApiError
from vitscope.contracts.archives import MAX_ZIP_MEMBERS, class_of, image_members

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


def inspect_image(data: bytes, max_pixels: int, name: str = "the file", decode: bool = True) -> ImageInfo:
    """Return the size and format of an encoded image; raise `ApiError` (4xx) if it is not acceptable.

    With `decode=False` only the header is checked (zip members, which the worker decodes).
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
        if decode:
            _decode(image, name)
        return ImageInfo(width, height, str(image.format))


def _decode(image: Image.Image, name: str) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ApiError(422, f"{name} is truncated or corrupt ({exc}): upload the complete file") from exc


def inspect_archive(data: bytes, max_pixels: int, max_member_bytes: int) -> ArchiveInfo:
    """Return what an ImageFolder zip (`<class>/<image>`) holds; raise `ApiError` (4xx) if it is not one.

    Every image member's header is checked (format, pixel count); members are decoded by the worker.
    """
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
            _check_member(archive, member, max_pixels, max_member_bytes)
    classes = sorted({class_of(m) for m in members})
    return ArchiveInfo(len(members), classes)


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, max_pixels: int, max_bytes: int) -> None:
    if member.file_size > max_bytes:
        raise ApiError(
            413, f"zip member {member.filename!r} is {member.file_size} bytes; the limit is {max_bytes}"
        )
    try:
        data = archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ApiError(422, f"zip member {member.filename!r} cannot be read ({exc})") from exc
    inspect_image(data, max_pixels, name=f"zip member {member.filename!r}", decode=False)


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"
