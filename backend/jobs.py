"""What the API does with jobs, between the HTTP routes and the store.

A job id is a keyed hash (HMAC) of its normalized spec, so submitting the same request twice finds
the same record and enqueues nothing. Results are a cache: when Redis has evicted a done
job's tensors, the job goes back on the queue from its stored spec and the reader is told
to retry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from backend.errors import ApiError
from backend.queue import JobQueue
from vitscope.contracts import kinds
from vitscope.contracts.jobs import Inputs, JobSpec, JobStatus, normalize_job, spec_from_request
from vitscope.contracts.store import JSON_DTYPE, JobRecord, ResultRef, Store, decode_array, to_jsonable

RECOMPUTING = "its results were evicted from the cache: recomputing, retry in a few seconds"
CANCELLED = "cancelled by a DELETE request; submit it again to run it"
RETRY_AFTER = {"Retry-After": "2"}


def submit(raw: Any, store: Store, queue: JobQueue, stale_after_s: float) -> JobRecord:
    """Validate a job request, create its record and enqueue it unless it exists; return the record.

    Raises `JobSpecError` for a bad spec and `ApiError` (422) for inputs that were never uploaded.
    """
    return _submit(normalize_job(raw), store, queue, stale_after_s)


def _submit(
    spec: JobSpec, store: Store, queue: JobQueue, stale_after_s: float, job_id: str | None = None
) -> JobRecord:
    check_uploads(spec.inputs, store)
    job_id = job_id or spec.id
    if store.submit(job_id, spec.model_dump(mode="json"), stale_after_s):
        enqueue(job_id, store, queue, spec.kind)
    record = store.job(job_id)
    assert record is not None  # just written; records have no TTL
    return refresh(record, store, queue)


def check_uploads(inputs: Inputs, store: Store) -> None:
    """Raise `ApiError` (422) naming each referenced upload that does not exist or is the wrong kind."""
    wanted: list[tuple[list[Any], str, str]] = [
        (["inputs", "images", i], image_id, "image") for i, image_id in enumerate(inputs.images or ())
    ]
    if inputs.zip is not None:
        wanted.append((["inputs", "zip"], inputs.zip, "archive"))
    metas = store.blob_metas([blob_id for _loc, blob_id, _kind in wanted])
    problems: list[dict[str, Any]] = [
        {"loc": loc, "msg": _missing(blob_id, kind)}
        for (loc, blob_id, kind), meta in zip(wanted, metas, strict=True)
        if meta is None or meta.get("kind") != kind
    ]
    if problems:
        raise ApiError(422, "; ".join(p["msg"] for p in problems), problems)


def _missing(blob_id: str, kind: str) -> str:
    endpoint = "POST /api/v1/images" if kind == "image" else "POST /api/v1/archives"
    return f"no uploaded {kind} with id {blob_id}: upload it first ({endpoint})"


def enqueue(job_id: str, store: Store, queue: JobQueue, kind: str) -> None:
    """Send the job (of `kind`) to the workers; if the queue is unreachable, mark it failed and raise
    `ApiError` (503)."""
    declared = kinds.all_kinds().get(kind)
    try:
        queue.send(job_id, interactive=declared is not None and declared.interactive)
    except Exception as exc:
        store.fail(job_id, "the job could not be queued: submit it again")
        raise ApiError(503, "the job queue (Redis) is unreachable: try again shortly") from exc


def refresh(record: JobRecord, store: Store, queue: JobQueue) -> JobRecord:
    """Return the record, first putting a done job back on the queue if its results were evicted."""
    if record.status != "done" or store.results_present(record.results):
        return record
    return recompute(record, store, queue)


def recompute(record: JobRecord, store: Store, queue: JobQueue) -> JobRecord:
    """Put a done job whose results are gone back on the queue (once, whoever asks); return the record."""
    if store.requeue(record.id, RECOMPUTING):
        enqueue(record.id, store, queue, str(record.spec.get("kind")))
    return store.job(record.id) or record


def result_ref(record: JobRecord, name: str) -> ResultRef:
    """Return where result `name` of a job lives; raise `ApiError` 409 (not done) or 404 (no such name)."""
    if record.status in ("queued", "running"):
        raise ApiError(
            409,
            f"job {record.id} is {record.status} ({record.progress:.0%}: {record.message}); "
            "retry when its status is done",
            headers=RETRY_AFTER,
        )
    if record.status == "failed":
        raise ApiError(
            409,
            f"job {record.id} failed: {record.error}. Fix the request and submit it again (POST /api/v1/jobs)",
        )
    if name not in record.results:
        raise ApiError(
            404,
            f"job {record.id} has no result {name!r}; its results are: {', '.join(sorted(record.results))}",
        )
    return record.results[name]


def result_json(name: str, ref: ResultRef, data: bytes) -> bytes:
    """Return a result as JSON bytes: the summary object itself, else `{"name","shape","dtype","data"}`."""
    if ref.dtype == JSON_DTYPE:
        return data
    array = decode_array(data)
    values = array.tolist() if _finite(array) else to_jsonable(array)
    body = {"name": name, "shape": list(array.shape), "dtype": str(array.dtype), "data": values}
    return json.dumps(body, separators=(",", ":")).encode()


def _finite(array: np.ndarray) -> bool:
    return not np.issubdtype(array.dtype, np.floating) or bool(np.isfinite(array).all())


class JobView(BaseModel):
    """A job as the API shows it: its normalized request, its state and where to see it."""

    id: str = Field(description="keyed hash (HMAC) of the normalized request (same request, same id)")
    kind: str
    model: str
    inputs: Inputs
    params: dict[str, Any] = Field(description="every parameter of the kind, defaults filled")
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    message: str
    error: str | None = Field(description="a human-readable reason when the job failed")
    results: list[str] = Field(description="result names, readable at /jobs/{id}/results/{name}")
    dashboard_url: str = Field(description="the dashboard view of this job")
    created: str
    updated: str
    runs: int = Field(description="completed computations (a recomputed eviction counts again)")
    attempts: int = Field(description="starts of the current computation")
    may_delete: bool | None = Field(
        None,
        description="whether the caller may cancel or delete the job: with authentication on only the "
        "token that submitted it first may; null where a response does not say (a result's 202)",
    )


def with_default_dtype(request: BaseModel, dtype: str | None) -> BaseModel:
    """`request` with its params' `dtype` set to the deployment's `dtype` where the kind has one and the
    client did not set it; `request` itself otherwise."""
    params = request.params  # type: ignore[attr-defined]
    if dtype is None or "dtype" not in type(params).model_fields or "dtype" in params.model_fields_set:
        return request
    return request.model_copy(update={"params": params.model_copy(update={"dtype": dtype})})


def submit_request(
    request: BaseModel, store: Store, queue: JobQueue, stale_after_s: float, job_id: str | None = None
) -> JobRecord:
    """Create the record of a validated typed request and enqueue it unless it exists; return the record.

    `job_id` is the (keyed) id to file it under; default the plain content hash of its spec.
    """
    return _submit(spec_from_request(request), store, queue, stale_after_s, job_id)


def view(record: JobRecord, dashboard_url: str, may_delete: bool | None = None) -> JobView:
    """Return the API's view of a job record (`may_delete`: whether the caller may cancel or delete it)."""
    spec = record.spec
    return JobView(
        id=record.id,
        kind=spec["kind"],
        model=spec["model"],
        inputs=Inputs.model_validate(spec["inputs"]),
        params=spec["params"],
        status=record.status,  # type: ignore[arg-type]
        progress=record.progress,
        message=record.message,
        error=record.error,
        results=sorted(record.results) if record.status == "done" else [],
        dashboard_url=dashboard_url.rstrip("/") + kinds.get(spec["kind"]).dashboard_path(record.id),
        created=_iso(record.created),
        updated=_iso(record.updated),
        runs=record.runs,
        attempts=record.attempts,
        may_delete=may_delete,
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
