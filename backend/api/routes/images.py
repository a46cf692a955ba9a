"""`POST /images` stores an uploaded image by the hash of its bytes; `GET /images/{id}` serves it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from backend.api.deps import SettingsDep, StoreDep
from backend.errors import ApiError
from backend.uploads import CONTENT_TYPES, inspect_image
from vitscope.contracts.jobs import IMAGE_ID

router = APIRouter(tags=["images"])
BlobId = Annotated[str, Path(pattern=IMAGE_ID, description="sha256 of the uploaded bytes")]


class ImageUploaded(BaseModel):
    """An accepted image: its id (sha256 of the bytes), size in pixels and format."""

    id: str
    width: int
    height: int
    format: str


@router.post("/images", response_model=ImageUploaded)
def upload_image(file: UploadFile, store: StoreDep, settings: SettingsDep) -> ImageUploaded:
    """Check the upload (real format, size caps, complete decode) and store it durably; return its id."""
    data = read_capped(file, settings.max_upload_bytes)
    info = inspect_image(data, settings.max_pixels)
    meta = {"kind": "image", "width": info.width, "height": info.height, "format": info.format}
    image_id = store.put_blob(data, {**meta, "content_type": CONTENT_TYPES[info.format], "bytes": len(data)})
    return ImageUploaded(id=image_id, width=info.width, height=info.height, format=info.format)


@router.get("/images/{image_id}", response_class=Response)
def get_image(image_id: BlobId, store: StoreDep) -> Response:
    """Return an uploaded image's bytes with its content type (immutable: the id is its hash)."""
    [meta] = store.blob_metas([image_id])
    data = store.blob(image_id) if meta and meta.get("kind") == "image" else None
    if meta is None or data is None:
        raise ApiError(404, f"no uploaded image with id {image_id}: upload it with POST /api/v1/images")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{image_id}"'}
    return Response(data, media_type=str(meta["content_type"]), headers=headers)


def read_capped(file: UploadFile, limit: int) -> bytes:
    """Return the uploaded file's bytes; raise `ApiError` (413) if it has more than `limit`."""
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"{file.filename or 'the file'} is larger than the limit of {limit} bytes")
    return data
