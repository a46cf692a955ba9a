"""`POST /jobs`, `GET /jobs/{id}`, `GET /jobs/{id}/results/{name}`: submit, watch, read results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from backend import jobs
from backend.api.deps import QueueDep, ResultCacheDep, SettingsDep, StoreDep
from backend.cache import Rendered
from backend.errors import ApiError
from backend.queue import JobQueue
from vitscope.contracts.jobs import job_request_type
from vitscope.contracts.store import JSON_DTYPE, JobRecord, Store

router = APIRouter(tags=["jobs"])

if TYPE_CHECKING:
    JobRequest = BaseModel
else:  # one typed schema per declared kind, built when the API starts
    JobRequest = Annotated[
        job_request_type(),
        Body(description="{kind, model, inputs, params}: one schema per kind, told apart by `kind`"),
    ]


@router.post("/jobs", status_code=202, response_model=jobs.JobView)
def create_job(
    body: JobRequest, store: StoreDep, queue: QueueDep, settings: SettingsDep, response: Response
) -> jobs.JobView:
    """Validate and enqueue a job; return its record. The same request returns the same job, computed once."""
    record = jobs.submit_request(body, store, queue, settings.stale_after_s)
    response.headers["Location"] = f"/api/v1/jobs/{record.id}"
    return jobs.view(record, settings.dashboard_url)


@router.get("/jobs/{job_id}", response_model=jobs.JobView)
def get_job(job_id: str, store: StoreDep, queue: QueueDep, settings: SettingsDep) -> jobs.JobView:
    """Return the job's record: status, progress 0..1, message, error, result names, dashboard URL."""
    record = jobs.refresh(_record(job_id, store), store, queue)
    return jobs.view(record, settings.dashboard_url)


@router.get("/jobs/{job_id}/results/{name}", response_class=Response)
async def get_result(
    job_id: str,
    name: str,
    request: Request,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    cache: ResultCacheDep,
    format: Annotated[Literal["json", "npy"], Query(description="json (default) or raw .npy bytes")] = "json",
) -> Response:
    """Return one result: JSON `{name, shape, dtype, data}` (`summary`: the summary object) or .npy bytes.

    202 when its tensors had been evicted and the job was queued again; 409 while it is computed.
    """
    # async, with the rendered result cached in-process: the hot path of a shared link
    key = (job_id, name, format)
    rendered = cache.get(key)
    if rendered is None:
        loaded = await run_in_threadpool(
            _load_result, job_id, name, format, store, queue, settings.dashboard_url
        )
        if isinstance(loaded, Response):
            return loaded
        rendered = loaded
        cache.put(key, rendered)
    elif time.monotonic() - rendered.touched > settings.result_touch_s:
        rendered.touched = time.monotonic()  # keep a popular result from expiring in Redis
        await run_in_threadpool(store.touch, rendered.ref)
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == rendered.etag:
        return Response(status_code=304, headers=headers)
    if format == "npy":
        headers["Content-Disposition"] = f'attachment; filename="{name}.npy"'
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


def _load_result(
    job_id: str, name: str, format: str, store: Store, queue: JobQueue, dashboard_url: str
) -> Rendered | Response:
    """Read and render a result from Redis; a 202 response if it was evicted (the job is queued again)."""
    record = _record(job_id, store)
    ref = jobs.result_ref(record, name)
    if format == "npy" and ref.dtype == JSON_DTYPE:
        raise ApiError(400, f"{name!r} is a JSON object, not an array: drop ?format=npy")
    data = store.result_bytes(ref)
    if data is None:
        return _recomputing(jobs.recompute(record, store, queue), dashboard_url)
    etag = f'"{ref.key.rsplit(":", 1)[-1]}.{format}"'
    if format == "npy":
        return Rendered(data, "application/octet-stream", etag, ref)
    return Rendered(jobs.result_json(name, ref, data), "application/json", etag, ref)


def _record(job_id: str, store: Store) -> JobRecord:
    record = store.job(job_id)
    if record is None:
        raise ApiError(
            404, f"no job {job_id}: submit it with POST /api/v1/jobs (a job's id is the hash of its request)"
        )
    return record


def _recomputing(record: JobRecord, dashboard_url: str) -> JSONResponse:
    body = {**jobs.view(record, dashboard_url).model_dump(mode="json"), "message": jobs.RECOMPUTING}
    return JSONResponse(body, status_code=202, headers=jobs.RETRY_AFTER)
