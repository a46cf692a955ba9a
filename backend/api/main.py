"""The vitscope HTTP API: assembles the routers under `/api/v1`. OpenAPI at `/docs`.

Run it with `uvicorn backend.api.main:app` (`vitscope up` does). It never imports torch:
jobs are sent to the workers by task name.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from backend import settings as settings_module
from backend.api import errors
from backend.api.deps import get_client, get_settings
from backend.api.errors import WHY, ErrorBody
from backend.api.middleware import BodySizeLimit
from backend.api.routes import archives, health, images, jobs, models

API_PREFIX = "/api/v1"


def create_app() -> FastAPI:
    """Return the API application."""
    app = FastAPI(
        title="vitscope API",
        description="Jobs that analyse Vision Transformer attention heads, and their results.",
        version="1",
    )
    errors.install(app)
    app.add_middleware(BodySizeLimit, limit_for=_upload_limits(app))
    # read once at start: the browser-facing policy (the dashboard calls the API server-side)
    origins = settings_module.get_settings().cors_origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    app.include_router(health.router, prefix=API_PREFIX)  # open: health checks carry no token
    for module in (models, images, archives, jobs):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[Depends(get_client)])
    app.openapi = _with_errors(app)  # type: ignore[method-assign]
    return app


def _with_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Wrap `app.openapi` so every operation documents the errors any route may answer, as `ErrorBody`.

    Routes declare their own (`responses=errors.responses(...)`); this adds what every route
    shares: 401 (behind a token), 404 (a path parameter), 422 (any parameter or body: FastAPI's
    own 422 schema is replaced by ours), 400 and 413 (a body), 500, 503 and 507.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_schema.pop("$defs", {}))
        schemas["ErrorBody"] = error_schema
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                _document(path, operation)
        app.openapi_schema = schema
        return schema

    return openapi


def _document(path: str, operation: dict[str, Any]) -> None:
    codes = {500, 503, 507}
    if not path.endswith("/health"):
        codes.add(401)
    if "{" in path:
        codes.add(404)
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if operation.get("requestBody"):
        codes |= {400, 413}  # a body that is not JSON (or not multipart) at all; one over its cap
    answers = operation.setdefault("responses", {})
    for code in sorted(codes):
        entry = answers.setdefault(str(code), {"description": WHY[code]})
        if code == 422 or "content" not in entry:
            entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _upload_limits(app: FastAPI) -> Callable[[str], Awaitable[int | None]]:
    async def limit_for(path: str) -> int | None:
        # read through dependency_overrides so a test's settings apply here too
        settings = app.dependency_overrides.get(get_settings, get_settings)()
        if inspect.isawaitable(settings):
            settings = await settings
        return {
            f"{API_PREFIX}/images": settings.max_upload_bytes,
            f"{API_PREFIX}/archives": settings.max_archive_bytes,
            f"{API_PREFIX}/jobs": settings.max_job_bytes,
        }.get(path)

    return limit_for


app = create_app()
