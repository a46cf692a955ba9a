"""`POST /jobs`, `GET /jobs/{id}`, `GET /jobs/{id}/results/{name}`, `DELETE /jobs/{id}`: submit,
watch, read results, cancel or delete."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from redis.client import Pipeline

from backend import jobs
from backend.access import Client, check_model_root, check_owner, check_rate, job_id_key, may_delete
from backend.api.deps import ClientDep, QueueDep, QuotaDep, ResultCacheDep, SettingsDep, StoreDep
from backend.api.errors import COMMON, responses
from backend.budget import check_cost
from backend.cache import Rendered
from backend.errors import ApiError
from backend.queue import JobQueue
from backend.quota import RECORD_OVERHEAD, Quota
from vitscope.contracts.jobs import job_examples, job_request_type, spec_from_request
from vitscope.contracts.store import (
    JSON_DTYPE,
    JobRecord,
    ResultRef,
    Store,
    StoreBusy,
    decode_array,
    encode_array,
    job_key,
)

router = APIRouter(tags=["jobs"])

if TYPE_CHECKING:
    JobRequest = BaseModel
else:  # one typed schema per declared kind, built when the API starts
    JobRequest = Annotated[
        job_request_type(),
        Body(
            description="{kind, model, inputs, params}: one schema per kind, told apart by `kind`",
            openapi_examples=job_examples(),
        ),
    ]


@router.post("/jobs", status_code=202, response_model=jobs.JobView, responses=responses(*COMMON, 413, 422))
def create_job(
    body: JobRequest,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    response: Response,
    client: ClientDep,
    quota: QuotaDep,
) -> jobs.JobView:
    """Validate and enqueue a job; return its record. The same request returns the same job, computed once.

    Refused before anything is stored (422) when its estimated cost exceeds the budget.
    """
    check_rate(
        store, "job submissions", client, settings.rate_jobs_per_minute, "VITSCOPE_RATE_JOBS_PER_MINUTE"
    )
    body = jobs.with_default_dtype(body, settings.job_dtype)
    spec = spec_from_request(body)
    check_model_root(spec.model, settings.model_roots)
    check_cost(spec, store, settings.max_job_gflop)
    jobs.check_uploads(spec.inputs, store)  # before anything is charged or written
    job_id = spec.keyed_id(job_id_key(store, settings.job_id_secret))
    charged = quota.reserve(job_key(job_id), len(spec.canonical()) + RECORD_OVERHEAD, client.name)
    try:
        record = jobs.submit_request(body, store, queue, settings.stale_after_s, job_id)
    except BaseException:
        if charged:
            quota.release(job_key(job_id))
        raise
    response.headers["Location"] = f"/api/v1/jobs/{record.id}"
    return jobs.view(record, settings.dashboard_url, may_delete(client, quota, job_key(record.id)))


@router.get("/jobs/{job_id}", response_model=jobs.JobView)
def get_job(
    job_id: str, store: StoreDep, queue: QueueDep, settings: SettingsDep, client: ClientDep, quota: QuotaDep
) -> jobs.JobView:
    """Return the job's record: status, progress 0..1, message, error, result names, dashboard URL, and
    whether the caller may cancel or delete it."""
    record = jobs.refresh(_record(job_id, store), store, queue)
    return jobs.view(record, settings.dashboard_url, may_delete(client, quota, job_key(job_id)))


@router.get(
    "/jobs/{job_id}/results/{name}",
    response_class=Response,
    responses={
        **responses(*COMMON, 400, 404, 409),
        202: {"model": jobs.JobView, "description": "its results were evicted: recomputing, retry"},
        304: {"description": "not modified (If-None-Match matched the ETag)"},
    },
)
async def get_result(
    job_id: str,
    name: str,
    request: Request,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    cache: ResultCacheDep,
    client: ClientDep,
    quota: QuotaDep,
    format: Annotated[Literal["json", "npy"], Query(description="json (default) or raw .npy bytes")] = "json",
    index: Annotated[
        list[int] | None,
        Query(
            max_length=8,
            description="leading indices to slice the array by: `?index=3&index=1` returns array[3, 1] "
            "(what one view draws, not the whole array)",
        ),
    ] = None,
) -> Response:
    """Return one result: JSON `{name, shape, dtype, data}` (`summary`: the summary object) or .npy bytes,
    whole or (with `index`) one slice of it.

    202 when its tensors had been evicted and the job was queued again; 409 while it is computed.
    """
    # async, with the rendered result cached in-process: the hot path of a shared link
    at = tuple(index or ())
    key = (job_id, name, format, *map(str, at))
    rendered = cache.get(key)
    if rendered is None:
        loaded = await run_in_threadpool(
            _load_result, job_id, name, format, store, queue, settings.dashboard_url, at, (client, quota)
        )
        if isinstance(loaded, Response):
            return loaded
        rendered = loaded
        cache.put(key, rendered)
    elif time.monotonic() - rendered.touched > settings.result_touch_s:
        rendered.touched = time.monotonic()  # keep a popular result from expiring in Redis
        if not await run_in_threadpool(store.touch, rendered.ref):
            cache.drop_job(job_id)  # deleted (through another API process) or evicted: ask Redis again
            return await get_result(
                job_id, name, request, store, queue, settings, cache, client, quota, format, index
            )
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == rendered.etag:
        return Response(status_code=304, headers=headers)
    if format == "npy":
        headers["Content-Disposition"] = f'attachment; filename="{name}.npy"'
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


@router.delete(
    "/jobs/{job_id}",
    response_model=jobs.JobView,
    responses={
        **responses(*COMMON, 403, 404, 409),
        200: {"description": "the job was queued: it is cancelled and will not run"},
        202: {
            "model": jobs.JobView,
            "description": "it was running: cancelled, its worker stops at its next batch",
        },
        204: {"description": "the job had finished (done, failed, cancelled): record and results deleted"},
        409: {
            **responses(409)[409],
            "description": "the job kept changing while it was being deleted: retry",
        },
    },
)
def delete_job(
    job_id: str,
    store: StoreDep,
    settings: SettingsDep,
    cache: ResultCacheDep,
    quota: QuotaDep,
    client: ClientDep,
    response: Response,
) -> Any:
    """Cancel a queued or running job (200/202, its record says `cancelled`), or delete a finished
    job's record and result tensors (204). A cancelled job may be submitted again; its uploads stay.

    With authentication on, only the client the job is charged to (its first submitter) may do either;
    another gets a 403 and nothing changes. The check and the change are one transaction: a job deleted
    and submitted again by someone else in between is checked again, not deleted.
    """

    def plan(pipe: Pipeline) -> str:  # what is there now decides; nothing runs if it changes meanwhile
        status = _record(job_id, store).status  # a missing job is a 404 whoever asks
        check_owner(
            client,
            quota,
            job_key(job_id),
            f"job {job_id} was submitted by another client: only its submitter can cancel or delete it "
            "(ask them, or the operator)",
        )
        pipe.multi()
        if status in ("queued", "running"):
            store.cancel(job_id, jobs.CANCELLED, on=pipe)
        else:
            store.delete_job(job_id, on=pipe)
            quota.release(job_key(job_id), on=pipe)
        return status

    try:
        before = store.atomically(job_key(job_id), plan)
    except StoreBusy:
        raise ApiError(
            409, f"job {job_id} kept changing while it was being cancelled or deleted: retry"
        ) from None
    if before in ("queued", "running"):
        response.status_code = 202 if before == "running" else 200
        return jobs.view(_record(job_id, store), settings.dashboard_url, True)
    cache.drop_job(job_id)
    return Response(status_code=204)


def _load_result(
    job_id: str,
    name: str,
    format: str,
    store: Store,
    queue: JobQueue,
    dashboard_url: str,
    at: tuple[int, ...],
    caller: tuple[Client, Quota],
) -> Rendered | Response:
    """Read and render a result (its slice `at`) from Redis; a 202 response if it was evicted (the job is
    queued again; its record says whether `caller`, (client, quota), may cancel it)."""
    record = _record(job_id, store)
    ref = jobs.result_ref(record, name)
    if format == "npy" and ref.dtype == JSON_DTYPE:
        raise ApiError(400, f"{name!r} is a JSON object, not an array: drop ?format=npy")
    data = store.result_bytes(ref)
    if data is None:
        allowed = may_delete(*caller, job_key(job_id))
        return _recomputing(jobs.recompute(record, store, queue), dashboard_url, allowed)
    etag = f'"{ref.key.rsplit(":", 1)[-1]}{"".join(f".{i}" for i in at)}.{format}"'
    if at:
        data = _slice(name, ref, data, at)
    if format == "npy":
        return Rendered(data, "application/octet-stream", etag, ref)
    return Rendered(jobs.result_json(name, ref, data), "application/json", etag, ref)


def _slice(name: str, ref: ResultRef, data: bytes, at: tuple[int, ...]) -> bytes:
    """The .npy bytes of array[at]; `ApiError` 400 for a JSON result or an index outside the array."""
    if ref.dtype == JSON_DTYPE:
        raise ApiError(400, f"{name!r} is a JSON object: it cannot be sliced with ?index")
    array = decode_array(data)
    if len(at) > array.ndim:
        raise ApiError(400, f"{name!r} has {array.ndim} axes; ?index gave {len(at)} indices")
    for axis, (i, size) in enumerate(zip(at, array.shape, strict=False)):
        if not 0 <= i < size:
            raise ApiError(
                400, f"index {i} is outside axis {axis} of {name!r} (size {size}, shape {array.shape})"
            )
    return encode_array(np.ascontiguousarray(array[at]))


def _record(job_id: str, store: Store) -> JobRecord:
    record = store.job(job_id)
    if record is None:
        raise ApiError(
            404,
            f"no job {job_id}: submit it with POST /api/v1/jobs (a job's id is a keyed hash of its request)",
        )
    return record


def _recomputing(record: JobRecord, dashboard_url: str, allowed: bool) -> JSONResponse:
    body = {**jobs.view(record, dashboard_url, allowed).model_dump(mode="json"), "message": jobs.RECOMPUTING}
    return JSONResponse(body, status_code=202, headers=jobs.RETRY_AFTER)
