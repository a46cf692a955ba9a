"""Every error the API answers is JSON: `{"error": {"status", "message", "problems"?}}`.

The handlers cover the API's own `ApiError`, a bad job spec (`JobSpecError`, with one problem
per field), any other `UserError`, FastAPI's request validation (422), Starlette's routing
errors (404, 405), an unreachable Redis (503), a full Redis (507: also an out-of-memory answer
from inside a Lua script, which redis-py raises as a plain `ResponseError`) and anything unexpected
(500, logged, with `Connection: close`: the server drops the connection after a 500, so the client
is told to). `responses(...)` documents these answers in the OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException

from backend.errors import ApiError
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import JobSpecError, normalize_job

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """One field at fault: where (`loc`) and what is wrong with it (`msg`)."""

    loc: list[str | int]
    msg: str


class ErrorDetail(BaseModel):
    """What went wrong, in words a person can act on."""

    status: int
    message: str
    problems: list[Problem] | None = Field(default=None, description="one entry per field at fault")


class ErrorBody(BaseModel):
    """Every error the API answers: `{"error": {"status", "message", "problems"?}}`."""

    error: ErrorDetail


WHY = {
    400: "the request is malformed (a body that does not parse, an empty upload, a JSON result asked as npy)",
    401: "authentication is on and no valid bearer token came",
    403: "authentication is on and another client wrote the job or upload: only it may cancel or delete it",
    404: "no such job, result or upload",
    409: "the job is not done (queued, running or failed)",
    413: "the body or the upload is larger than its limit",
    415: "the upload is not a supported image or a zip",
    422: "the request does not validate, or its estimated cost exceeds the budget",
    429: "too many requests from this client in this minute",
    500: "an internal error (logged); the connection is closed",
    503: "the store (Redis) or the job queue is unreachable",
    507: "the store is full, or the quota for uploads and job records is used up",
}
"""Why each error status is answered (the OpenAPI descriptions)."""

COMMON = (401, 429, 500, 503, 507)
"""Errors any authenticated route may answer."""


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route: each error status with its reason and the error schema."""
    return {status: {"model": ErrorBody, "description": WHY[status]} for status in sorted(set(statuses))}


def error_response(
    status: int,
    message: str,
    problems: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Return the JSON error response every failure of the API is answered with."""
    body: dict[str, Any] = {"status": status, "message": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into a JSON error."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(JobSpecError, _job_spec_error)
    app.add_exception_handler(UserError, _user_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RedisConnectionError, _redis_down)
    app.add_exception_handler(RedisTimeoutError, _redis_down)
    app.add_exception_handler(RedisOutOfMemoryError, _redis_full)
    app.add_exception_handler(RedisResponseError, _redis_error)
    app.add_exception_handler(Exception, _internal_error)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.problems, exc.headers)


async def _job_spec_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobSpecError)
    return error_response(422, f"invalid job: {exc}", exc.problems)


async def _user_error(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if request.method == "POST" and request.url.path.endswith("/jobs"):
        # the typed body refused it: say why in the words of the job contract, one problem per field
        try:
            normalize_job(exc.body)
        except JobSpecError as spec_error:
            return await _job_spec_error(request, spec_error)
    problems = [{"loc": list(err["loc"]), "msg": err["msg"]} for err in exc.errors()]
    text = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
    if any(p["loc"] == ["body", "file"] for p in problems):
        text += " (send the file as the multipart/form-data field 'file')"
    return error_response(422, f"invalid request: {text}", problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no endpoint {request.method} {request.url.path}: the API is described at /docs"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}: the API is described at /docs"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _redis_down(_request: Request, exc: Exception) -> JSONResponse:
    log.error("Redis unreachable: %s", exc)
    return error_response(
        503, "the store (Redis) is unreachable: try again shortly", headers={"Retry-After": "5"}
    )


async def _redis_full(_request: Request, exc: Exception) -> JSONResponse:
    log.error("Redis is full: %s", exc)
    return error_response(
        507, "the store is full (Redis maxmemory reached by uploads and job records): tell the operator"
    )


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    # a script's write refused for want of memory comes back as "... OOM command not allowed ..."
    if "OOM" in str(exc):
        return await _redis_full(request, exc)
    return await _internal_error(request, exc)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}", headers={"Connection": "close"})
