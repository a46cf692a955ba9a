"""The ImageFolder zip rule (torch-free), shared by the upload check and the worker's reader."""

from __future__ import annotations

import zipfile

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
