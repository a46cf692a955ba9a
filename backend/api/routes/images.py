"""`POST /images` stores an uploaded image by the hash of its bytes; `GET /images/{id}` serves it;
`DELETE /images/{id}` deletes it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel
from redis.client import Pipeline

from backend.access import Client, check_owner, check_rate
from backend.api.deps import ClientDep, QuotaDep, SettingsDep, StoreDep
from backend.api.errors import COMMON, responses
from backend.errors import ApiError
from backend.quota import Quota
from backend.uploads import CONTENT_TYPES, inspect_image
from vitscope.contracts.jobs import IMAGE_ID
from vitscope.contracts.store import Store, StoreBusy, blob_key

router = APIRouter(tags=["images"])
BlobId = Annotated[str, Path(pattern=IMAGE_ID, description="sha256 of the uploaded bytes")]


class ImageUploaded(BaseModel):
    """An accepted image: its id (sha256 of the bytes), size in pixels and format."""

    id: str
    width: int
    height: int
    format: str


@router.post("/images", response_model=ImageUploaded, responses=responses(*COMMON, 400, 413, 415, 422))
def upload_image(
    file: UploadFile, store: StoreDep, settings: SettingsDep, client: ClientDep, quota: QuotaDep
) -> ImageUploaded:
    """Check the upload (real format, size caps, complete decode) and store it durably; return its id.

    The width and height are the upright ones (EXIF orientation applied, as the analyses see it).
    """
    check_rate(store, "uploads", client, settings.rate_uploads_per_minute, "VITSCOPE_RATE_UPLOADS_PER_MINUTE")
    data = read_capped(file, settings.max_upload_bytes)
    info = inspect_image(data, settings.max_pixels, concurrency=settings.decode_concurrency)
    meta = {"kind": "image", "width": info.width, "height": info.height, "format": info.format}
    meta |= {"content_type": CONTENT_TYPES[info.format], "bytes": len(data)}
    image_id = quota.put_blob(store, data, meta, client.name)
    return ImageUploaded(id=image_id, width=info.width, height=info.height, format=info.format)


@router.get("/images/{image_id}", response_class=Response, responses=responses(*COMMON, 404, 422))
def get_image(image_id: BlobId, store: StoreDep) -> Response:
    """Return an uploaded image's bytes with its content type (immutable: the id is its hash)."""
    [meta] = store.blob_metas([image_id])
    data = store.blob(image_id) if meta and meta.get("kind") == "image" else None
    if meta is None or data is None:
        raise ApiError(404, f"no uploaded image with id {image_id}: upload it with POST /api/v1/images")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{image_id}"'}
    return Response(data, media_type=str(meta["content_type"]), headers=headers)


@router.delete(
    "/images/{image_id}",
    status_code=204,
    response_class=Response,
    responses={**responses(*COMMON, 403, 404, 409, 422), 204: {"description": "the image is deleted"}},
)
def delete_image(image_id: BlobId, store: StoreDep, quota: QuotaDep, client: ClientDep) -> Response:
    """Delete an uploaded image. Finished jobs keep their results; a job that still needs the image
    (queued, or recomputing evicted results) fails, saying to upload it again."""
    return delete_upload(image_id, "image", store, quota, client)


def delete_upload(blob_id: str, kind: str, store: Store, quota: Quota, client: Client) -> Response:
    """Delete an upload of `kind` (image|archive) and give back its charge; return the 204 response.

    Raises `ApiError` 404 when there is no upload of that kind with that id, and 403 (deleting
    nothing) when authentication is on and another client uploaded it first (`check_owner`).
    """
    noun = "zip" if kind == "archive" else kind
    key = blob_key(blob_id)

    def plan(pipe: Pipeline) -> None:  # nothing runs if the upload changes meanwhile (`Store.atomically`)
        [meta] = store.blob_metas([blob_id])
        if meta is None or meta.get("kind") != kind:
            raise ApiError(404, f"no uploaded {noun} with id {blob_id}: nothing to delete")
        check_owner(
            client,
            quota,
            key,
            f"{noun} {blob_id} was uploaded by another client: only its uploader can delete it "
            "(ask them, or the operator)",
        )
        pipe.multi()
        pipe.delete(key)
        quota.release(key, on=pipe)

    try:
        store.atomically(key, plan)
    except StoreBusy:
        raise ApiError(409, f"{noun} {blob_id} kept changing while it was being deleted: retry") from None
    return Response(status_code=204)


def read_capped(file: UploadFile, limit: int) -> bytes:
    """Return the uploaded file's bytes; raise `ApiError` (413) if it has more than `limit`."""
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"{file.filename or 'the file'} is larger than the limit of {limit} bytes")
    return data
