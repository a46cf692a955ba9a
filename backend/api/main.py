"""The vitscope HTTP API: assembles the routers under `/api/v1`. OpenAPI at `/docs`.

Run it with `uvicorn backend.api.main:app` (`vitscope up` does). It never imports torch:
jobs are sent to the workers by task name.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from backend.api import errors
from backend.api.deps import get_settings
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
    for module in (health, models, images, archives, jobs):
        app.include_router(module.router, prefix=API_PREFIX)
    return app


def _upload_limits(app: FastAPI) -> Callable[[str], Awaitable[int | None]]:
    async def limit_for(path: str) -> int | None:
        # read through dependency_overrides so a test's settings apply here too
        settings = app.dependency_overrides.get(get_settings, get_settings)()
        if inspect.isawaitable(settings):
            settings = await settings
        return {
            f"{API_PREFIX}/images": settings.max_upload_bytes,
            f"{API_PREFIX}/archives": settings.max_archive_bytes,
        }.get(path)

    return limit_for


app = create_app()
