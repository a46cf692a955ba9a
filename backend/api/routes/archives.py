"""`POST /archives`: an ImageFolder zip (one folder per class), checked and stored by its hash;
`DELETE /archives/{id}` deletes it."""

from __future__ import annotations

from fastapi import APIRouter, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from backend.access import check_rate
from backend.api.deps import ClientDep, QuotaDep, SettingsDep, StoreDep
from backend.api.errors import COMMON, responses
from backend.api.routes.images import BlobId, delete_upload, read_capped
from backend.uploads import inspect_archive
from vitscope.contracts.archives import ArchiveBudget

router = APIRouter(tags=["images"])


class ArchiveUploaded(BaseModel):
    """An accepted zip: its id (sha256 of the bytes), its number of images and its class folders."""

    id: str
    images: int
    classes: list[str]


@router.post("/archives", response_model=ArchiveUploaded, responses=responses(*COMMON, 400, 413, 415, 422))
def upload_archive(
    file: UploadFile, store: StoreDep, settings: SettingsDep, client: ClientDep, quota: QuotaDep
) -> ArchiveUploaded:
    """Check the zip (image members in class folders, size caps, unpacking budget) and store it
    durably; return its id."""
    check_rate(store, "uploads", client, settings.rate_uploads_per_minute, "VITSCOPE_RATE_UPLOADS_PER_MINUTE")
    data = read_capped(file, settings.max_archive_bytes)
    budget = ArchiveBudget(
        settings.max_archive_unpacked_bytes, settings.max_archive_ratio, settings.archive_check_s
    )
    info = inspect_archive(data, settings.max_pixels, settings.max_upload_bytes, budget)
    meta = {"kind": "archive", "images": info.images, "classes": info.classes}
    archive_id = quota.put_blob(store, data, meta, client.name)
    return ArchiveUploaded(id=archive_id, images=info.images, classes=info.classes)


@router.delete(
    "/archives/{archive_id}",
    status_code=204,
    response_class=Response,
    responses={**responses(*COMMON, 403, 404, 409, 422), 204: {"description": "the zip is deleted"}},
)
def delete_archive(archive_id: BlobId, store: StoreDep, quota: QuotaDep, client: ClientDep) -> Response:
    """Delete an uploaded zip. Finished jobs keep their results; a job that still needs it fails."""
    return delete_upload(archive_id, "archive", store, quota, client)
