"""`POST /archives`: an ImageFolder zip (one folder per class), checked and stored by its hash."""

from __future__ import annotations

from fastapi import APIRouter, UploadFile
from pydantic import BaseModel

from backend.api.deps import SettingsDep, StoreDep
from backend.api.routes.images import read_capped
from backend.uploads import inspect_archive

router = APIRouter(tags=["images"])


class ArchiveUploaded(BaseModel):
    """An accepted zip: its id (sha256 of the bytes), its number of images and its class folders."""

    id: str
    images: int
    classes: list[str]


@router.post("/archives", response_model=ArchiveUploaded)
def upload_archive(file: UploadFile, store: StoreDep, settings: SettingsDep) -> ArchiveUploaded:
    """Check the zip (image members in class folders, size caps) and store it durably; return its id."""
    data = read_capped(file, settings.max_archive_bytes)
    info = inspect_archive(data, settings.max_pixels, settings.max_upload_bytes)
    archive_id = store.put_blob(data, {"kind": "archive", "images": info.images, "classes": info.classes})
    return ArchiveUploaded(id=archive_id, images=info.images, classes=info.classes)
